package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The boot test's assertions are data: a table of markers, each a line to
// find on the console (a JSON line with some fields, or a plain line with
// some text) or a check over the whole log. Changing what corral prints
// means changing a row here.

// matcher tests one field of a JSON line.
type matcher struct {
	key  string
	desc string
	ok   func(v any, present bool) bool
}

// eq: the field equals want (numbers compare by value: "pid":1 is 1).
func eq(key string, want any) matcher {
	return matcher{key, fmt.Sprintf("%s=%v", key, want), func(v any, present bool) bool {
		return present && fmt.Sprint(v) == fmt.Sprint(want)
	}}
}

// has: the field is a string containing sub.
func has(key, sub string) matcher {
	return matcher{key, fmt.Sprintf("%s~%q", key, sub), func(v any, present bool) bool {
		s, ok := v.(string)
		return ok && strings.Contains(s, sub)
	}}
}

// includes: the field is an array containing every one of items.
func includes(key string, items ...string) matcher {
	return matcher{key, fmt.Sprintf("%s⊇[%s]", key, strings.Join(items, " ")), func(v any, present bool) bool {
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		for _, want := range items {
			found := false
			for _, x := range arr {
				if fmt.Sprint(x) == want {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	}}
}

// present: the field exists.
func present(key string) matcher {
	return matcher{key, key, func(_ any, present bool) bool { return present }}
}

// marker is one assertion on a boot's console log.
type marker struct {
	Name string
	// Needs names what corral must have for this to pass, while it is not
	// landed; it is printed with a failure.
	Needs string
	// On lists the boots it applies to (virt, raspi3b, virt-disk); nil is
	// every service boot.
	On []string
	// A JSON line matching all of these,
	JSON []matcher
	// or a plain line containing this,
	Plain string
	// (Anywhere: Plain may also be in a line that carries a JSON object:
	// the kernel prints into the middle of userspace lines),
	Anywhere bool
	// or a check over the whole log returning the index of the line that
	// decided it (-1 for none).
	Eval func(lines []Line, from int) (int, string, error)
	// Check is an extra test of the matching line.
	Check func(Line) (string, error)
	// After: only lines after the one that satisfied that marker count.
	After string
	// Within and AtLeast bound how long after the After marker's line the
	// matching line came (host clock).
	Within, AtLeast time.Duration
	// Timeline labels the marker's line in the boot timeline.
	Timeline string
}

func (m marker) appliesTo(boot string) bool {
	return len(m.On) == 0 || contains(m.On, boot)
}

func (m marker) matches(l Line) bool {
	if m.Plain != "" {
		return (l.JSON == nil || m.Anywhere) && strings.Contains(l.Text, m.Plain)
	}
	if l.JSON == nil || len(m.JSON) == 0 {
		return false
	}
	for _, f := range m.JSON {
		v, ok := l.JSON[f.key]
		if !f.ok(v, ok) {
			return false
		}
	}
	return true
}

func (m marker) want() string {
	if m.Plain != "" {
		return fmt.Sprintf("a console line containing %q", m.Plain)
	}
	if m.Eval != nil {
		return "(checked over the whole log)"
	}
	var d []string
	for _, f := range m.JSON {
		d = append(d, f.desc)
	}
	return "a JSON line with " + strings.Join(d, ", ")
}

// result is one marker's outcome.
type result struct {
	Marker marker
	OK     bool
	Line   int // index of the deciding line, -1 if none
	At     time.Duration
	Detail string // what was seen, for the report
	Err    string // why it failed
}

// evaluate runs the markers that apply to boot over its lines, in order.
func evaluate(markers []marker, lines []Line, boot string) []result {
	var out []result
	found := map[string]int{} // marker name -> line index
	for _, m := range markers {
		if !m.appliesTo(boot) {
			continue
		}
		r := result{Marker: m, Line: -1}
		from := 0
		if m.After != "" {
			i, ok := found[m.After]
			if !ok {
				r.Err = fmt.Sprintf("needs %q first, which did not happen", m.After)
				out = append(out, r)
				continue
			}
			from = i + 1
		}
		switch {
		case m.Eval != nil:
			i, detail, err := m.Eval(lines, from)
			r.Line, r.Detail = i, detail
			if err != nil {
				r.Err = err.Error()
			} else {
				r.OK = true
			}
		default:
			for i := from; i < len(lines); i++ {
				if !m.matches(lines[i]) {
					continue
				}
				r.Line = i
				if m.Check != nil {
					detail, err := m.Check(lines[i])
					r.Detail = detail
					if err != nil {
						r.Err = err.Error()
						break
					}
				}
				r.OK = true
				break
			}
			if r.Line < 0 {
				r.Err = "not seen: " + m.want()
			}
		}
		if r.Line >= 0 {
			r.At = lines[r.Line].At
		}
		if r.OK && from > 0 && r.Line >= from && (m.Within > 0 || m.AtLeast > 0) {
			d := r.At - lines[from-1].At
			r.Detail = strings.TrimPrefix(r.Detail+fmt.Sprintf("; %.2fs after %q", d.Seconds(), m.After), "; ")
			switch {
			case m.Within > 0 && d > m.Within:
				r.OK, r.Err = false, fmt.Sprintf("%.2fs after %q, more than %s", d.Seconds(), m.After, m.Within)
			case d < m.AtLeast:
				r.OK, r.Err = false, fmt.Sprintf("%.2fs after %q, less than %s", d.Seconds(), m.After, m.AtLeast)
			}
		}
		if r.OK {
			found[m.Name] = r.Line
		}
		out = append(out, r)
	}
	return out
}

// Markers used by After and the timeline.
const (
	mkKernel   = "the kernel started"
	mkInit     = "the kernel ran /init"
	mkBanner   = "corral started as PID 1 in machine mode"
	mkShutdown = "the shutdown request was acted on"
	mkBye      = "corral said bye"
	mkSwitch   = "the stage corral switched to the disk"
)

// bannerJSON is corral's first line as PID 1 of a machine.
var bannerJSON = []matcher{eq("mode", "machine"), eq("pid", 1), has("message", "starting (machine mode)")}

// svcInfo is what the markers need to know about a service.
type svcInfo struct {
	Name   string
	Notify bool
}

// bootMarkers is the table for the service boots (virt, raspi3b,
// virt-disk).
func bootMarkers(services []svcInfo) []marker {
	ms := []marker{
		{Name: mkKernel, Plain: "Booting Linux on physical CPU", Timeline: "kernel started"},
		{Name: mkInit, Plain: " as init process", Timeline: "kernel ran init"},
		{Name: "the stage loaded the disk's modules (virtio_blk, ext4)", On: []string{"virt-disk"},
			JSON: []matcher{eq("message", "loaded kernel modules"), includes("modules", "virtio_blk", "ext4")}, Timeline: "stage modules loaded"},
		{Name: mkSwitch, On: []string{"virt-disk"},
			JSON: []matcher{has("message", "switching to the root file system")}, Timeline: "switch to the disk root"},
		{Name: mkBanner, JSON: bannerJSON, Timeline: "corral started"},
		{Name: "the disk's corral started as PID 1", On: []string{"virt-disk"}, After: mkSwitch, JSON: bannerJSON, Timeline: "corral started from the disk"},
		{Name: "cgroup v2 with the memory, cpu and pids controllers",
			JSON: []matcher{eq("message", "cgroups v2"), includes("controllers", "memory", "cpu", "pids")}},
		{Name: "kernel modules loaded (veth, bridge, nf_tables)",
			JSON: []matcher{eq("message", "loaded kernel modules"), includes("modules", "veth", "bridge", "nf_tables", "nft_nat")}, Timeline: "modules loaded"},
		{Name: "the bridge is up with corral's nftables tables",
			JSON: []matcher{has("message", "bridge up"), eq("bridge", "corral0"), eq("table", "corral")}, Timeline: "bridge up"},
		{Name: "the broken service file is reported with file, line and key",
			JSON: []matcher{has("file", brokenService+".toml"), present("line"), present("key")}},
	}
	for _, s := range services {
		if s.Name == brokenService {
			continue
		}
		m := marker{Name: s.Name + " reached running", JSON: []matcher{eq("svc", s.Name), eq("to", "running")}, Timeline: s.Name + " running"}
		if s.Notify {
			m.Name, m.Timeline = s.Name+" reached running on READY=1", s.Name+" ready"
			m.JSON = append(m.JSON, eq("event", "ready"))
		}
		ms = append(ms, m)
	}
	ms = append(ms, []marker{
		{Name: "check fetched web's page across the bridge",
			JSON: []matcher{eq("svc", "check"), eq("output", true), has("message", "check: web page fetched across the bridge")}, Timeline: "check fetched the page"},
		{Name: "check is done", JSON: []matcher{eq("svc", "check"), eq("to", "done")}},
		{Name: "web was reached through its port forward (10.88.0.1:8080 → 10.88.0.10:80)",
			JSON: []matcher{eq("svc", "qemu-check"), has("message", "QEMU-CHECK: ok web through its port forward")}, Timeline: "port forward reached"},
		{Name: "hog was oom-killed under its memory limit",
			JSON: []matcher{eq("svc", "hog"), eq("to", "backoff"), has("message", "oom-killed")}, Timeline: "hog oom-killed"},
		{Name: "forkbomb was stopped by its pids limit (< 32 children)",
			JSON: []matcher{eq("svc", "forkbomb"), eq("output", true), has("message", "payload: forked ")}, Check: forkedFewer(32)},
		{Name: "flaky was restarted after crashing", JSON: []matcher{eq("svc", "flaky"), eq("from", "backoff"), eq("to", "starting")}},
		{Name: "hello came back after corral kill hello KILL",
			JSON: []matcher{eq("svc", "qemu-check"), has("message", "QEMU-CHECK: kill ok")}, Timeline: "hello back after kill"},
		{Name: "hello reached running again", Eval: reachedTwice("hello", "running")},
		{Name: "qemu-check passed", JSON: []matcher{eq("svc", "qemu-check"), has("message", "QEMU-CHECK: PASS")}},
		{Name: mkShutdown, JSON: []matcher{has("message", "shutting down: stopping services in reverse dependency order")}, Timeline: "shutdown requested"},
		{Name: "every running service stopped", After: mkShutdown, Eval: allStopped},
		{Name: "file systems unmounted", After: mkShutdown,
			JSON: []matcher{eq("message", "unmounted filesystems"), present("count")}},
		{Name: mkBye, After: mkShutdown, JSON: []matcher{eq("message", "bye")}, Timeline: "corral said bye"},
		{Name: "the kernel powered down", On: []string{"virt", "virt-disk"}, After: mkBye, Plain: "reboot: Power down", Timeline: "kernel powered down"},
		{Name: "the kernel restarted (watchdog)", On: []string{"raspi3b"}, After: mkBye, Plain: "reboot: Restarting system", Timeline: "kernel restarting"},
		// A panic that PID 1 recovered from is still a bug.
		{Name: "corral never crashed", Eval: never(marker{JSON: []matcher{eq("message", "corral crashed")}})},
	}...)
	return ms
}

// selftestMarkers is the table for the selftest boot.
func selftestMarkers() []marker {
	return []marker{
		{Name: mkKernel, Plain: "Booting Linux on physical CPU", Timeline: "kernel started"},
		{Name: "the kernel ran /selftest", Plain: "Run /selftest as init process", Timeline: "kernel ran /selftest"},
		{Name: "cgroup v2 controllers enabled", Plain: "SELFTEST: cgroup2: controllers", Check: selftestControllers},
		{Name: "modules loaded", Plain: "SELFTEST: loaded ", Timeline: "modules loaded"},
		{Name: "no test skipped for want of a kernel feature", Eval: noSkips},
		{Name: "SELFTEST PASS", Plain: "SELFTEST PASS", Timeline: "tests done"},
		{Name: "the kernel powered down", After: "SELFTEST PASS", Plain: "reboot: Power down", Timeline: "kernel powered down"},
	}
}

// Markers of the watchdog boots, used by After and the timeline.
const (
	mkWDArmed    = "corral armed softdog with the configured timeout"
	mkCriticalUp = wdCritical + " reached running on READY=1"
	mkWDCheck    = "watchdog-check held the machine up and passed"
	mkWedged     = "critical missed its service watchdog (wedged)"
	mkNotPetting = "corral stopped petting the watchdog"
)

// wdCritical is the critical service of the watchdog boots.
const wdCritical = "critical"

// wdStable is its stable_after (the default): a boot is good once every
// critical service stayed up that long.
const wdStable = 10 * time.Second

// watchdogMarkers is the table for the watchdog boots (watchdog-healthy,
// watchdog-wedged). timeout is the hardware watchdog's, from the boot's
// corral.toml.
func watchdogMarkers(timeout time.Duration) []marker {
	healthy, wedged := []string{bootWatchdogHealthy}, []string{bootWatchdogWedged}
	notPetting := marker{JSON: []matcher{has("message", "watchdog: not petting")}}
	softdogReset := marker{Plain: "softdog: Initiating system reboot", Anywhere: true}
	shutdown := []matcher{has("message", "shutting down: stopping services in reverse dependency order")}
	bootComplete := []matcher{has("message", "boot complete:")}
	return []marker{
		{Name: mkKernel, Plain: "Booting Linux on physical CPU", Timeline: "kernel started"},
		{Name: mkInit, Plain: " as init process", Timeline: "kernel ran init"},
		{Name: mkBanner, JSON: bannerJSON, Timeline: "corral started"},
		{Name: "softdog can be stopped (nowayout=0)", Plain: "softdog: initialized.", Anywhere: true, Check: textHas("nowayout=0")},
		{Name: "kernel modules loaded (softdog)",
			JSON: []matcher{eq("message", "loaded kernel modules"), includes("modules", "softdog")}, Timeline: "softdog loaded"},
		{Name: mkWDArmed, JSON: []matcher{eq("message", "watchdog: armed"), eq("device", "/dev/watchdog"),
			eq("identity", "Software Watchdog"), eq("timeout", timeout.Milliseconds()), includes("critical", wdCritical)}, Timeline: "watchdog armed"},
		{Name: "softdog took the timeout (WDIOC_SETTIMEOUT)", Eval: never(marker{JSON: []matcher{has("message", "watchdog: set timeout")}})},
		{Name: mkCriticalUp,
			JSON: []matcher{eq("svc", wdCritical), eq("to", "running"), eq("event", "ready")}, Timeline: wdCritical + " ready"},

		// Healthy: held up for four timeouts, petted all along, then a
		// clean power-off that disarms softdog.
		{Name: "corral never stopped petting", On: healthy, Eval: never(notPetting)},
		// AtLeast less 100 ms: corral counts from the transition, and each
		// line reaches the console (and gets its host time) a little
		// after it was logged; measured 9.998-10.01 s.
		{Name: fmt.Sprintf("the boot counted as good once %s had stayed up %s (stable_after)", wdCritical, wdStable), On: healthy,
			After: mkCriticalUp, AtLeast: wdStable - 100*time.Millisecond, Within: wdStable + 2*time.Second, JSON: bootComplete, Timeline: "boot complete"},
		{Name: mkWDCheck, On: healthy, JSON: []matcher{eq("svc", "watchdog-check"), has("message", "WATCHDOG-CHECK: PASS")}},
		{Name: fmt.Sprintf("the power-off came %s (4 timeouts) or more after %s was up", 4*timeout, wdCritical), On: healthy,
			After: mkCriticalUp, AtLeast: 4 * timeout, JSON: shutdown},
		{Name: mkShutdown, On: healthy, JSON: shutdown, Timeline: "power-off requested"},
		{Name: "every running service stopped", On: healthy, After: mkShutdown, Eval: allStopped},
		{Name: "the power-off disarmed softdog (magic close, state inactive)", On: healthy, After: mkShutdown,
			JSON: []matcher{eq("message", "watchdog: disarmed (magic close)"), eq("state", "inactive")}, Timeline: "watchdog disarmed"},
		{Name: "the kernel did not refuse the magic close", On: healthy, Eval: never(marker{Plain: "watchdog did not stop!", Anywhere: true})},
		{Name: mkBye, On: healthy, After: mkShutdown, JSON: []matcher{eq("message", "bye")}, Timeline: "corral said bye"},
		{Name: "the kernel powered down", On: healthy, After: mkBye, Plain: "reboot: Power down", Anywhere: true, Timeline: "kernel powered down"},
		{Name: "softdog never reset the board", On: healthy, Eval: never(softdogReset)},

		// Wedged: the service watchdog fires, corral stops petting and
		// softdog resets the board within its timeout; nobody asks for a
		// shutdown.
		{Name: mkWedged, On: wedged, After: mkCriticalUp,
			JSON: []matcher{eq("svc", wdCritical), eq("event", "watchdog"), eq("to", "stopping")}, Timeline: wdCritical + " wedged: watchdog timeout"},
		{Name: "corral petted until the wedge", On: wedged, After: mkWDArmed,
			Eval: noneBefore(notPetting, marker{JSON: []matcher{eq("svc", wdCritical), eq("event", "watchdog")}})},
		{Name: mkNotPetting + " within a timeout of the wedge", On: wedged, After: mkWedged, Within: timeout,
			JSON: notPetting.JSON, Check: detailOf("message"), Timeline: "corral stopped petting"},
		{Name: fmt.Sprintf("softdog reset the board within %s (the timeout + 1s)", timeout+time.Second), On: wedged,
			After: mkNotPetting + " within a timeout of the wedge", Within: timeout + time.Second,
			Plain: softdogReset.Plain, Anywhere: true, Timeline: "softdog reset the board"},
		{Name: "the boot never counted as good (" + wdCritical + " restarted within its stable_after)", On: wedged, Eval: never(marker{JSON: bootComplete})},
		{Name: "nothing asked for a shutdown", On: wedged, Eval: never(marker{JSON: shutdown})},
		{Name: "no power-off", On: wedged, Eval: never(marker{Plain: "reboot: Power down", Anywhere: true})},
	}
}

// Markers of the watchdog-bootloop boot.
const (
	mkRun2 = "qemu run 2 began (the same data disk)"
	mkRun3 = "qemu run 3 began (the same data disk)"
)

// bootloopMarkers is the table for the watchdog-bootloop boot: three runs
// of one data disk. In the first two, critical comes up and fails, and
// softdog resets the board; the third is the safe mode boot. timeout is
// the hardware watchdog's.
func bootloopMarkers(timeout time.Duration) []marker {
	const check = "bootloop-check"
	counted := func(n int) []matcher { // corral's line, not the check's
		return []matcher{has("message", "failed-boot counter:"), eq("failed_boots", n)}
	}
	critFailed := []matcher{eq("svc", wdCritical), eq("to", "failed")}
	notPetting := []matcher{has("message", "watchdog: not petting")}
	reset := "softdog: Initiating system reboot"
	var ms []marker
	ms = append(ms,
		marker{Name: mkKernel, Plain: "Booting Linux on physical CPU", Timeline: "kernel started"},
		marker{Name: mkBanner, JSON: bannerJSON, Timeline: "corral started"},
		marker{Name: "run 1: the data disk was mounted on /data",
			JSON: []matcher{eq("message", "data partition mounted on /data"), eq("spec", "LABEL=data")}, Timeline: "run 1: /data mounted"},
		marker{Name: "run 1: no failed boot counted yet",
			Eval: noneBefore(marker{JSON: []matcher{has("message", "failed-boot counter:"), present("failed_boots")}}, marker{Plain: runLine(2, bootloopRuns)})},
	)
	// Runs 1 and 2: critical fails, corral stops petting, softdog resets.
	for run := 1; run <= 2; run++ {
		p := fmt.Sprintf("run %d: ", run)
		after := ""
		if run == 2 {
			after = mkRun2
			ms = append(ms,
				marker{Name: mkRun2, Plain: runLine(2, bootloopRuns), Timeline: "run 2"},
				marker{Name: p + "1 failed boot counted", After: mkRun2, JSON: counted(1)})
		}
		ms = append(ms,
			marker{Name: p + wdCritical + " failed", After: after, JSON: critFailed, Timeline: p + wdCritical + " failed"},
			marker{Name: p + "corral stopped petting", After: p + wdCritical + " failed", Within: timeout, JSON: notPetting},
			marker{Name: fmt.Sprintf("%ssoftdog reset the board within %s", p, timeout+time.Second), After: p + "corral stopped petting",
				Within: timeout + time.Second, Plain: reset, Anywhere: true, Timeline: p + "softdog reset"},
		)
	}
	return append(ms,
		marker{Name: mkRun3, Plain: runLine(3, bootloopRuns), Timeline: "run 3"},
		marker{Name: "run 3: SAFE MODE after 2 failed boots, starting only " + check, After: mkRun3,
			JSON: []matcher{has("message", "SAFE MODE"), eq("failed_boots", 2), includes("starting", check)}, Timeline: "run 3: SAFE MODE"},
		marker{Name: "run 3: " + wdCritical + " was not started", After: mkRun3,
			Eval: never(marker{JSON: []matcher{eq("svc", wdCritical), eq("to", "starting")}})},
		marker{Name: "run 3: the watchdog does not wait for the held " + wdCritical, After: mkRun3,
			JSON: []matcher{eq("message", "watchdog: armed"), eq("critical", "[]")}},
		marker{Name: "run 3: the safe mode boot counted as good, the counter reset", After: mkRun3,
			JSON: []matcher{has("message", "boot complete"), eq("safe_mode", true)}, Timeline: "run 3: boot complete"},
		marker{Name: "run 3: " + check + " saw " + wdCritical + " held and the counter at 0", After: mkRun3,
			JSON: []matcher{eq("svc", check), has("message", "BOOTLOOP-CHECK: PASS")}},
		marker{Name: "run 3: corral never stopped petting", After: mkRun3, Eval: never(marker{JSON: notPetting})},
		marker{Name: "run 3: the power-off disarmed softdog", After: mkRun3,
			JSON: []matcher{eq("message", "watchdog: disarmed (magic close)"), eq("state", "inactive")}},
		marker{Name: "run 3: the kernel powered down", After: mkRun3, Plain: "reboot: Power down", Anywhere: true, Timeline: "run 3: power down"},
		marker{Name: "run 3: no softdog reset", After: mkRun3, Eval: never(marker{Plain: reset, Anywhere: true})},
	)
}

// textHas checks that the matching line also contains sub.
func textHas(sub string) func(Line) (string, error) {
	return func(l Line) (string, error) {
		if !strings.Contains(l.Text, sub) {
			return "", fmt.Errorf("no %q in %q", sub, l.Text)
		}
		return sub, nil
	}
}

// detailOf reports a field of the matching line.
func detailOf(key string) func(Line) (string, error) {
	return func(l Line) (string, error) { return l.str(key), nil }
}

// never: no line from `from` on matches m.
func never(m marker) func([]Line, int) (int, string, error) {
	return func(lines []Line, from int) (int, string, error) {
		for i := from; i < len(lines); i++ {
			if m.matches(lines[i]) {
				return i, "", fmt.Errorf("seen: %s", clip(lines[i].Text, 160))
			}
		}
		return -1, "", nil
	}
}

// noneBefore: no line matches bad before the first that matches until.
func noneBefore(bad, until marker) func([]Line, int) (int, string, error) {
	return func(lines []Line, from int) (int, string, error) {
		for i := from; i < len(lines); i++ {
			switch {
			case until.matches(lines[i]):
				return i, "", nil
			case bad.matches(lines[i]):
				return i, "", fmt.Errorf("before %s: %s", until.want(), clip(lines[i].Text, 160))
			}
		}
		return -1, "", fmt.Errorf("not seen: %s", until.want())
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

var forkedRe = regexp.MustCompile(`payload: forked (\d+) children`)

// forkedFewer checks the forkbomb's report: fewer than limit children.
func forkedFewer(limit int) func(Line) (string, error) {
	return func(l Line) (string, error) {
		m := forkedRe.FindStringSubmatch(l.str("message"))
		if m == nil {
			return "", fmt.Errorf("no child count in %q", l.str("message"))
		}
		n, _ := strconv.Atoi(m[1])
		detail := fmt.Sprintf("forked %d children", n)
		if n >= limit {
			return detail, fmt.Errorf("forked %d children, not fewer than %d", n, limit)
		}
		return detail, nil
	}
}

// reachedTwice: svc went to state at least twice.
func reachedTwice(svc, state string) func([]Line, int) (int, string, error) {
	return func(lines []Line, from int) (int, string, error) {
		n := 0
		for i := from; i < len(lines); i++ {
			if lines[i].str("svc") == svc && lines[i].str("to") == state {
				if n++; n == 2 {
					return i, "", nil
				}
			}
		}
		return -1, "", fmt.Errorf("%s reached %s %d time(s), want 2", svc, state, n)
	}
}

// transition reports whether l is a service state transition.
func transition(l Line) (svc, to string, ok bool) {
	svc, to = l.str("svc"), l.str("to")
	_, hasFrom := l.JSON["from"]
	return svc, to, svc != "" && to != "" && hasFrom
}

// allStopped: every service running when the shutdown began (the line at
// from-1) ends stopped (or done: a one-shot that exited by itself).
func allStopped(lines []Line, from int) (int, string, error) {
	last := map[string]string{}
	for i := 0; i < from && i < len(lines); i++ {
		if svc, to, ok := transition(lines[i]); ok {
			last[svc] = to
		}
	}
	var running []string
	for svc, st := range last {
		if st == "running" {
			running = append(running, svc)
		}
	}
	sort.Strings(running)
	final := map[string]string{}
	at := map[string]int{}
	for i := from; i < len(lines); i++ {
		if svc, to, ok := transition(lines[i]); ok {
			final[svc], at[svc] = to, i
		}
	}
	idx := -1
	var bad []string
	for _, svc := range running {
		switch final[svc] {
		case "stopped", "done":
			idx = max(idx, at[svc])
		case "":
			bad = append(bad, svc+" (no transition)")
		default:
			bad = append(bad, svc+" ("+final[svc]+")")
		}
	}
	detail := strings.Join(running, " ")
	if len(running) == 0 {
		return -1, "", fmt.Errorf("no service was running when the shutdown began")
	}
	if len(bad) > 0 {
		return idx, detail, fmt.Errorf("not stopped: %s", strings.Join(bad, ", "))
	}
	return idx, detail, nil
}

var skipRe = regexp.MustCompile(`^\s*--- SKIP: (\S+)`)

// selftestMaySkip are the skip reasons accepted in the guest: tools of the
// build machine that the image does not have. A test that skips for
// anything else (not root, a cgroup controller or a kernel feature
// missing) fails the selftest: it would hide what the guest is for.
var selftestMaySkip = []string{
	"no C compiler",
	"no mkfs.ext4",
	"not installed",
}

var skipReasonRe = regexp.MustCompile(`^\s+\S+_test\.go:\d+: (.*)$`)

// skipReason finds the t.Skip message go test -v printed for the test
// skipped at line i. With parallel tests the message follows that test's
// last "=== RUN/CONT/NAME" header, and other tests' lines may come between
// it and the "--- SKIP" line.
func skipReason(lines []Line, i int) string {
	name := skipRe.FindStringSubmatch(lines[i].Text)[1]
	for j := i - 1; j >= 0 && j >= i-200; j-- {
		f := strings.Fields(strings.TrimSpace(lines[j].Text))
		if len(f) != 3 || f[0] != "===" || f[2] != name {
			continue
		}
		for k := j + 1; k < i; k++ {
			if strings.HasPrefix(strings.TrimSpace(lines[k].Text), "=== ") {
				break
			}
			if m := skipReasonRe.FindStringSubmatch(lines[k].Text); m != nil {
				return m[1]
			}
		}
		break
	}
	// Not parallel: the message is right above.
	if i > 0 {
		if m := skipReasonRe.FindStringSubmatch(lines[i-1].Text); m != nil {
			return m[1]
		}
	}
	return ""
}

// noSkips: go test -v printed no "--- SKIP:" but for the reasons of
// selftestMaySkip.
func noSkips(lines []Line, from int) (int, string, error) {
	var skipped, allowed []string
	for i := from; i < len(lines); i++ {
		m := skipRe.FindStringSubmatch(lines[i].Text)
		if m == nil {
			continue
		}
		why := skipReason(lines, i)
		ok := false
		for _, r := range selftestMaySkip {
			ok = ok || why != "" && strings.Contains(why, r)
		}
		if ok {
			allowed = append(allowed, m[1]+" ("+why+")")
		} else {
			skipped = append(skipped, m[1]+" ("+why+")")
		}
	}
	detail := ""
	if len(allowed) > 0 {
		detail = "skipped for want of a build tool: " + strings.Join(allowed, ", ")
	}
	if len(skipped) > 0 {
		return -1, detail, fmt.Errorf("skipped: %s", strings.Join(skipped, " "))
	}
	return -1, detail, nil
}

var enabledRe = regexp.MustCompile(`enabled \[([^\]]*)\]`)

func selftestControllers(l Line) (string, error) {
	m := enabledRe.FindStringSubmatch(l.Text)
	if m == nil {
		return "", fmt.Errorf("no enabled controllers in %q", l.Text)
	}
	got := strings.Fields(m[1])
	for _, c := range []string{"memory", "cpu", "pids", "io"} {
		if !contains(got, c) {
			return m[1], fmt.Errorf("controller %s not enabled (%s)", c, m[1])
		}
	}
	return m[1], nil
}

// testSummary counts go test -v results in a selftest log.
func testSummary(lines []Line) (pass, fail, skip int, failed []string) {
	re := regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)
	for _, l := range lines {
		m := re.FindStringSubmatch(l.Text)
		if m == nil {
			continue
		}
		switch m[1] {
		case "PASS":
			pass++
		case "FAIL":
			fail++
			failed = append(failed, m[2])
		case "SKIP":
			skip++
		}
	}
	return pass, fail, skip, failed
}
