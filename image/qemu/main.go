// Command qemu makes corral the real PID 1 of an emulated Raspberry Pi 3
// (qemu's raspi3b) and of a generic arm64 machine (virt), from Debian
// bookworm's arm64 kernel and busybox-static and our own static binaries,
// and checks that boot from the serial console.
//
//	go run ./image/qemu build   build/qemu: vmlinuz, the Pi 3 DTB, initramfs.cpio.gz,
//	                            stage.cpio.gz + root.ext4 (the disk variant)
//	go run ./image/qemu test    build, then boot virt, raspi3b, the selftest (the
//	                            root integration tests inside the guest), the
//	                            disk variant and the hardware watchdog boots
//	                            (softdog, and three runs of a boot loop);
//	                            check the console; print timelines
//	go run ./image/qemu run     build if needed, boot virt on this terminal
//	                            (ctrl-a x quits)
//
// See image/qemu/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: go run ./image/qemu COMMAND [FLAGS]

  build [-refresh]                 build the image into build/qemu
  test  [-boots LIST] [-no-build] [-v] [-timeout-scale F] [-refresh]
                                   build, boot and check (LIST: virt,raspi3b,virt-selftest,virt-disk,
                                   watchdog-healthy,watchdog-wedged,watchdog-bootloop)
  run   [-machine virt|raspi3b] [-disk] [-json] [-selftest] [-config NAME] [-timeout D]
                                   boot on this terminal; ctrl-a x quits qemu
                                   (-config watchdog-healthy: that boot's /etc/corral-NAME)
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "qemu:", err)
		return 2
	}
	relBase = root
	l := newLayout(root)
	log := &stepLog{out: stdout}
	// ctrl-C and SIGTERM cancel the context: running qemu processes are
	// killed by pid, and the command reports what it saw.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cmd {
	case "build":
		refresh := fs.Bool("refresh", false, "refresh the apt package lists first")
		if fs.Parse(rest) != nil || fs.NArg() > 0 {
			return 2
		}
		if _, err := build(ctx, l, buildOptions{refresh: *refresh}, log); err != nil {
			fmt.Fprintln(stderr, "qemu: build:", err)
			return 1
		}
		return 0
	case "test":
		boots := fs.String("boots", strings.Join(allBoots, ","), "boots to run, in order")
		noBuild := fs.Bool("no-build", false, "use the image already in build/qemu")
		verbose := fs.Bool("v", false, "show every console line live")
		refresh := fs.Bool("refresh", false, "refresh the apt package lists first")
		scale := fs.Float64("timeout-scale", 1, "multiply every boot timeout (slow machines)")
		shim := fs.Bool("tmpfs-shim", false, "boot the initramfs through /tmpfs-root (copies it into a tmpfs first: pivot_root fails on rootfs)")
		if fs.Parse(rest) != nil || fs.NArg() > 0 || *scale <= 0 {
			return 2
		}
		o := testOptions{noBuild: *noBuild, verbose: *verbose, refresh: *refresh, scale: *scale, shim: *shim}
		for _, b := range strings.Split(*boots, ",") {
			if b = strings.TrimSpace(b); b == "" {
				continue
			}
			if !contains(allBoots, b) {
				fmt.Fprintf(stderr, "qemu: unknown boot %q (have %s)\n", b, strings.Join(allBoots, ", "))
				return 2
			}
			o.boots = append(o.boots, b)
		}
		return cmdTest(ctx, l, o, log, stdout)
	case "run":
		mach := fs.String("machine", "virt", "virt or raspi3b")
		disk := fs.Bool("disk", false, "boot the disk variant (stage initramfs + root.ext4; virt only)")
		js := fs.Bool("json", false, "corral logs JSON, as in the boot test")
		selftest := fs.Bool("selftest", false, "boot into /selftest (the root integration tests)")
		timeout := fs.Duration("timeout", time.Hour, "kill qemu after this long")
		shim := fs.Bool("tmpfs-shim", false, "boot the initramfs through /tmpfs-root (see test -h)")
		config := fs.String("config", "", "boot with another guest configuration: "+strings.Join(extraConfigs, ", "))
		if fs.Parse(rest) != nil || fs.NArg() > 0 {
			return 2
		}
		if *config != "" && !contains(extraConfigs, *config) {
			fmt.Fprintf(stderr, "qemu: unknown configuration %q (have %s)\n", *config, strings.Join(extraConfigs, ", "))
			return 2
		}
		return cmdRun(ctx, l, runOptions{machine: *mach, disk: *disk, json: *js, selftest: *selftest, timeout: *timeout, shim: *shim, config: *config}, log, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "qemu: unknown command %q\n", cmd)
	usage(stderr)
	return 2
}

type runOptions struct {
	machine    string
	disk, json bool
	selftest   bool
	timeout    time.Duration
	shim       bool
	config     string // one of extraConfigs, or ""
}

// cmdRun boots one machine interactively.
func cmdRun(ctx context.Context, l layout, o runOptions, log *stepLog, stderr io.Writer) int {
	if stale, why := needsBuild(l); stale {
		log.note("build needed: %s", why)
		if _, err := build(ctx, l, buildOptions{}, log); err != nil {
			fmt.Fprintln(stderr, "qemu: build:", err)
			return 1
		}
	}
	s := bootSpec{
		Name: o.machine, Machine: machineVirt, Kernel: l.path(outVmlinuz), DTB: l.path(outDTB),
		Initrd: l.path(outInitramfs), Cmdline: baseCmdline, Timeout: o.timeout,
	}
	switch o.machine {
	case "virt":
	case "raspi3b":
		s.Machine = machineRaspi3b
	default:
		fmt.Fprintf(stderr, "qemu: unknown machine %q (virt or raspi3b)\n", o.machine)
		return 2
	}
	if o.disk {
		if o.machine != "virt" {
			fmt.Fprintln(stderr, "qemu: -disk is for virt (the Pi 3 model has no virtio)")
			return 2
		}
		s.Initrd, s.Drive = l.path(outStage), l.path(outRootExt4)
	}
	if o.shim && !o.disk && !o.selftest {
		s.Cmdline += " rdinit=/" + imgShim
	}
	var args []string
	if o.json {
		args = append(args, "--log-format=json")
	}
	if o.config != "" {
		args = append(args, "--config=/"+imgEtcFor(o.config))
	}
	switch {
	case o.selftest:
		s.Cmdline += " rdinit=/" + imgSelftest
	case len(args) > 0:
		s.Cmdline += " -- " + strings.Join(args, " ")
	}
	log.note("booting %s on this terminal (kernel command line %q); ctrl-a x quits qemu, ctrl-a h lists the other keys", describe(s), s.Cmdline)
	if err := runInteractive(ctx, s); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "qemu:", err)
		return 1
	}
	return 0
}
