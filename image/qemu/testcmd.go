package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The boots of `test`, in order.
const (
	bootVirt     = "virt"
	bootRaspi3b  = "raspi3b"
	bootSelftest = "virt-selftest"
	bootDisk     = "virt-disk"
	// On virt, with softdog as the hardware watchdog and a configuration
	// of their own (guest/NAME/, extraConfigs).
	bootWatchdogHealthy = "watchdog-healthy"
	bootWatchdogWedged  = "watchdog-wedged"
	// Three runs on one data disk: the failed-boot counter and safe mode.
	bootWatchdogBootloop = "watchdog-bootloop"
)

var allBoots = []string{bootVirt, bootRaspi3b, bootSelftest, bootDisk, bootWatchdogHealthy, bootWatchdogWedged, bootWatchdogBootloop}

// bootloopRuns: boot_limit (2) failed boots, then the safe mode boot.
const bootloopRuns = 3

// Hard timeouts, per boot. Measured on the 2-core build machine: virt,
// raspi3b and virt-disk take 12-28 s, the selftest 200-250 s on two
// vCPUs (its test binaries have -test.timeout 8m).
var bootTimeouts = map[string]time.Duration{
	bootVirt:     90 * time.Second,
	bootRaspi3b:  120 * time.Second,
	bootSelftest: 9 * time.Minute,
	bootDisk:     90 * time.Second,
	// 18-22 s (12 s of it held on purpose) and 12-16 s.
	bootWatchdogHealthy: 60 * time.Second,
	bootWatchdogWedged:  60 * time.Second,
	// Each run: 7-10 s.
	bootWatchdogBootloop: 60 * time.Second,
}

type testOptions struct {
	boots   []string
	noBuild bool
	verbose bool
	refresh bool
	scale   float64 // multiplies every timeout
	shim    bool    // boot the initramfs through /tmpfs-root
}

// spec returns the qemu run for one of the test boots.
func (o testOptions) spec(l layout, name string, out io.Writer) bootSpec {
	corralArgs := " -- --log-format=json"
	if contains(extraConfigs, name) {
		corralArgs += " --config=/" + imgEtcFor(name)
	}
	s := bootSpec{
		Name:    name,
		Machine: machineVirt,
		Kernel:  l.path(outVmlinuz),
		DTB:     l.path(outDTB),
		Initrd:  l.path(outInitramfs),
		Cmdline: baseCmdline + " corral.test=" + name + corralArgs,
		Timeout: time.Duration(float64(bootTimeouts[name]) * o.scale),
		Log:     filepath.Join(l.out, "logs", logName(name)),
		Out:     out,
		Echo:    echoFilter(o.verbose),
		Abort:   abortOn,
	}
	if o.shim && name != bootSelftest && name != bootDisk {
		s.Cmdline = baseCmdline + " rdinit=/" + imgShim + " corral.test=" + name + corralArgs
	}
	switch name {
	case bootRaspi3b:
		s.Machine = machineRaspi3b
	case bootSelftest:
		s.Machine = machineVirtSMP
		s.Cmdline = baseCmdline + " rdinit=/" + imgSelftest + " corral.test=selftest"
	case bootDisk:
		s.Initrd = l.path(outStage)
		s.Drive = l.path(outRootExt4)
	case bootWatchdogBootloop:
		s.Drive, s.DataDisk, s.Runs = l.path(outBootloopData), true, bootloopRuns
	}
	return s
}

// logName is the console log's file: <machine>-<variant>.log.
func logName(boot string) string {
	switch boot {
	case bootVirt, bootRaspi3b:
		return boot + "-initramfs.log"
	case bootWatchdogHealthy, bootWatchdogWedged, bootWatchdogBootloop:
		return "virt-" + boot + ".log"
	}
	return boot + ".log"
}

// echoFilter shows the guest's own progress lines live (all lines with -v).
func echoFilter(verbose bool) func(Line) bool {
	return func(l Line) bool {
		if verbose {
			return true
		}
		msg := l.Text
		if l.JSON != nil {
			msg = l.str("message")
			if l.str("level") == "error" {
				return true
			}
		}
		for _, p := range []string{"QEMU-CHECK:", "WATCHDOG-CHECK:", "watchdog: ", "SELFTEST", "--- FAIL", "--- SKIP", "panic", "Kernel panic", "reboot: "} {
			if strings.HasPrefix(strings.TrimSpace(msg), p) || strings.Contains(l.Text, "Kernel panic") || strings.Contains(l.Text, "softdog: Initiating") {
				return true
			}
		}
		return false
	}
}

// abortOn recognizes the lines after which a test boot cannot end by
// itself: nothing will shut the machine down.
func abortOn(l Line) string {
	switch {
	case l.str("svc") == "qemu-check" && l.str("to") == "failed":
		return "qemu-check failed: " + l.str("message")
	case strings.Contains(l.str("message"), "no services will run"):
		return "corral: " + l.str("message")
	}
	return ""
}

// servicesOf reads the service list of the built image for the markers.
func servicesOf(etc string) ([]svcInfo, error) {
	var out []svcInfo
	for _, name := range serviceNames(etc) {
		if name == brokenService {
			continue
		}
		var f struct {
			Notify bool `toml:"notify"`
		}
		if _, err := toml.DecodeFile(filepath.Join(etc, "services", name+".toml"), &f); err != nil {
			return nil, fmt.Errorf("read service %s: %w", name, err)
		}
		out = append(out, svcInfo{Name: name, Notify: f.Notify})
	}
	return out, nil
}

// watchdogTimeout reads [watchdog] timeout from an /etc/corral tree of the
// image: the watchdog boots' markers measure against it.
func watchdogTimeout(etc string) (time.Duration, error) {
	var f struct {
		Watchdog struct {
			Timeout string `toml:"timeout"`
		} `toml:"watchdog"`
	}
	path := filepath.Join(etc, "corral.toml")
	if _, err := toml.DecodeFile(path, &f); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	d, err := time.ParseDuration(f.Watchdog.Timeout)
	if err != nil {
		return 0, fmt.Errorf("%s: [watchdog] timeout: %w", path, err)
	}
	return d, nil
}

// markersFor is the markers table of one boot.
func markersFor(l layout, boot string, services []svcInfo) ([]marker, error) {
	switch boot {
	case bootSelftest:
		return selftestMarkers(), nil
	case bootWatchdogHealthy, bootWatchdogWedged, bootWatchdogBootloop:
		timeout, err := watchdogTimeout(filepath.Join(l.path(outRootfs), imgEtcFor(boot)))
		if err != nil {
			return nil, err
		}
		if boot == bootWatchdogBootloop {
			return bootloopMarkers(timeout), nil
		}
		return watchdogMarkers(timeout), nil
	}
	return bootMarkers(services), nil
}

// bootOutcome is one boot's verdict.
type bootOutcome struct {
	Name    string
	Elapsed time.Duration
	Passed  int
	Failed  []string
	Err     string
}

// cmdTest builds (unless -no-build), runs the boots and reports.
func cmdTest(ctx context.Context, l layout, o testOptions, log *stepLog, out io.Writer) int {
	start := time.Now()
	if !o.noBuild {
		if _, err := build(ctx, l, buildOptions{refresh: o.refresh}, log); err != nil {
			fmt.Fprintln(os.Stderr, "qemu: build:", err)
			return 1
		}
	} else if _, err := readManifest(l); err != nil {
		fmt.Fprintln(os.Stderr, "qemu: -no-build, but there is no image: run go run ./image/qemu build:", err)
		return 1
	}
	built := time.Since(start)
	services, err := servicesOf(filepath.Join(l.path(outRootfs), imgEtcCorral))
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemu:", err)
		return 1
	}
	var outcomes []bootOutcome
	for _, name := range o.boots {
		if ctx.Err() != nil {
			break
		}
		markers, err := markersFor(l, name, services)
		if err != nil {
			fmt.Fprintln(os.Stderr, "qemu:", err)
			return 1
		}
		spec := o.spec(l, name, out)
		log.note("boot %s: %s, timeout %s, console log %s", name, describe(spec), spec.Timeout, rel(spec.Log))
		run := runBoots(ctx, spec)
		oc := report(out, spec, run, markers)
		outcomes = append(outcomes, oc)
		if run.Err != nil && ctx.Err() != nil {
			break
		}
	}

	fmt.Fprintf(out, "\nqemu test summary (build %.1fs, total %.1fs):\n", built.Seconds(), time.Since(start).Seconds())
	failed := ctx.Err() != nil
	for _, oc := range outcomes {
		verdict := "PASS"
		if len(oc.Failed) > 0 || oc.Err != "" {
			verdict, failed = "FAIL", true
		}
		fmt.Fprintf(out, "  %-16s %s  %6.1fs  %d passed", oc.Name, verdict, oc.Elapsed.Seconds(), oc.Passed)
		if n := len(oc.Failed); n > 0 {
			shown := oc.Failed
			if n > 4 {
				shown = append(shown[:4:4], fmt.Sprintf("and %d more", n-4))
			}
			fmt.Fprintf(out, ", %d failed: %s", n, strings.Join(shown, "; "))
		}
		if oc.Err != "" {
			fmt.Fprintf(out, " (%s)", oc.Err)
		}
		fmt.Fprintln(out)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(out, "  interrupted")
		return 130
	}
	if failed {
		return 1
	}
	return 0
}

func describe(s bootSpec) string {
	d := "-M " + s.Machine.Name
	if s.Drive != "" {
		d += ", " + filepath.Base(s.Initrd) + " + " + filepath.Base(s.Drive)
	} else {
		d += ", " + filepath.Base(s.Initrd)
	}
	if s.DataDisk {
		d += " (made fresh)"
	}
	if s.Runs > 1 {
		d += fmt.Sprintf(", %d runs", s.Runs)
	}
	return d
}

// report evaluates one boot and prints its assertions and timeline.
func report(out io.Writer, spec bootSpec, run *bootRun, markers []marker) bootOutcome {
	oc := bootOutcome{Name: spec.Name, Elapsed: run.Elapsed}
	results := evaluate(markers, run.Lines, spec.Name)
	fmt.Fprintf(out, "\nboot %s: qemu ran %.1fs", spec.Name, run.Elapsed.Seconds())
	switch {
	case run.Err != nil:
		fmt.Fprintf(out, ", %v", run.Err)
		oc.Err = run.Err.Error()
	case run.TimedOut:
		fmt.Fprintf(out, ", killed at the %s timeout", spec.Timeout)
		oc.Err = "timed out"
	case run.Aborted != "" && run.ExitCode < 0:
		fmt.Fprintf(out, ", killed %s after: %s", abortGrace, run.Aborted)
		oc.Err = "aborted: " + run.Aborted
	default:
		fmt.Fprintf(out, ", exited by itself with status %d", run.ExitCode)
		if run.ExitCode != 0 {
			oc.Err = fmt.Sprintf("qemu exit status %d", run.ExitCode)
		}
	}
	fmt.Fprintf(out, " (log: %s)\n", rel(spec.Log))
	for _, r := range results {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
			oc.Failed = append(oc.Failed, r.Marker.Name)
		} else {
			oc.Passed++
		}
		at := "      "
		if r.Line >= 0 {
			at = fmt.Sprintf("%6.2f", r.At.Seconds())
		}
		fmt.Fprintf(out, "  %s %s  %s", mark, at, r.Marker.Name)
		if r.Detail != "" {
			fmt.Fprintf(out, ": %s", r.Detail)
		}
		if !r.OK {
			fmt.Fprintf(out, " — %s", r.Err)
			if r.Marker.Needs != "" {
				fmt.Fprintf(out, " [needs %s in corral]", r.Marker.Needs)
			}
		}
		fmt.Fprintln(out)
	}
	if spec.Name == bootSelftest {
		pass, fail, skip, failed := testSummary(run.Lines)
		fmt.Fprintf(out, "  go tests: %d passed, %d failed, %d skipped", pass, fail, skip)
		if len(failed) > 0 {
			fmt.Fprintf(out, " (failed: %s)", strings.Join(failed, " "))
		}
		fmt.Fprintln(out)
	}
	note := ""
	if run.ExitCode >= 0 {
		note = fmt.Sprintf(" (status %d)", run.ExitCode)
	} else {
		note = " (killed)"
	}
	printTimeline(out, spec.Name, timeline(results, run.Lines, run.Elapsed, note))
	return oc
}
