package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file starts qemu and reads its serial console. Every boot has a
// hard timeout; the qemu process is killed by its pid (and only it) on
// timeout, on ctrl-C (the context is cancelled) and if this program dies
// (parent-death signal).

// machine is one qemu machine model.
type machine struct {
	Name string
	Args []string
	DTB  bool // needs the Pi 3 device tree
}

var (
	// The generic arm64 machine. cortex-a53 is the Pi 3's core; one CPU
	// boots fastest under TCG (NOTES.md).
	machineVirt = machine{Name: "virt", Args: []string{"-M", "virt", "-cpu", "cortex-a53", "-smp", "1", "-m", "512"}}
	// The selftest boot runs minutes of tests, not a boot: two CPUs (two
	// host threads with multi-threaded TCG) run them in parallel, as on
	// the host, and a few hundred ms more of boot do not count.
	machineVirtSMP = machine{Name: "virt", Args: []string{"-M", "virt", "-cpu", "cortex-a53", "-smp", "2", "-m", "1G"}}
	// The Raspberry Pi 3 model B. Multi-threaded TCG is unstable on it
	// (boots take 5 to 19 s or hang): one thread for its four cores.
	machineRaspi3b = machine{Name: "raspi3b", Args: []string{"-M", "raspi3b", "-m", "1G", "-accel", "tcg,thread=single"}, DTB: true}
)

// baseCmdline is the kernel command line of every boot: the PL011 serial
// console (ttyAMA0 on both machines) and, on a panic, an immediate reboot,
// which -no-reboot turns into qemu exiting.
const baseCmdline = "console=ttyAMA0 panic=-1"

// bootSpec is one qemu run.
type bootSpec struct {
	Name    string // e.g. virt, raspi3b, virt-disk, virt-selftest
	Machine machine
	Kernel  string
	DTB     string
	Initrd  string
	Drive   string // a raw disk image on if=virtio, or ""
	// DataDisk: Drive is made fresh before the first run, an empty ext4
	// labelled "data" (the boot's [storage] data partition).
	DataDisk bool
	// Runs is how many times qemu boots this (1 if 0), one after the other
	// on the same Drive: the console lines are joined into one log, each
	// run after the first starting with a runLine.
	Runs    int
	Cmdline string
	Timeout time.Duration
	Log     string // console log file
	// Echo decides which lines are shown live on the terminal.
	Echo func(Line) bool
	Out  io.Writer
	// Abort names a line after which the boot cannot end by itself (the
	// guest's check service failed): qemu is killed abortGrace later
	// instead of at the timeout.
	Abort func(Line) string
}

// abortGrace is how long the console is still read after an abort line.
const abortGrace = 5 * time.Second

// bootRun is what came of a boot.
type bootRun struct {
	Lines    []Line
	Elapsed  time.Duration // qemu start to exit
	ExitCode int           // -1 if killed
	TimedOut bool
	Aborted  string // why the boot was cut short
	Err      error  // could not start, or interrupted
}

func (s bootSpec) args() []string {
	a := append([]string{}, s.Machine.Args...)
	a = append(a, "-kernel", s.Kernel)
	if s.Machine.DTB {
		a = append(a, "-dtb", s.DTB)
	}
	if s.Initrd != "" {
		a = append(a, "-initrd", s.Initrd)
	}
	if s.Drive != "" {
		a = append(a, "-drive", "file="+s.Drive+",if=virtio,format=raw")
	}
	return append(a, "-append", s.Cmdline, "-no-reboot", "-nic", "none")
}

// runBoot boots and collects the console until qemu exits or the timeout.
func runBoot(ctx context.Context, s bootSpec) *bootRun {
	res := &bootRun{ExitCode: -1}
	if err := os.MkdirAll(filepath.Dir(s.Log), 0o755); err != nil {
		res.Err = err
		return res
	}
	logf, err := os.Create(s.Log)
	if err != nil {
		res.Err = err
		return res
	}
	defer logf.Close()
	// The serial port on stdout; no monitor (ctrl-a does nothing).
	args := append(s.args(), "-nographic", "-monitor", "none", "-serial", "stdio")
	fmt.Fprintf(logf, "# %s: qemu-system-aarch64 %s\n", s.Name, quoteArgs(args))

	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cmd := exec.Command("qemu-system-aarch64", args...)
	cmd.Stdin = nil // /dev/null
	// Its own process group, so a ctrl-C on the terminal reaches only this
	// program, which then kills qemu itself; and killed with us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		res.Err = err
		return res
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		res.Err = err
		return res
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.Err = fmt.Errorf("start qemu: %w", err)
		return res
	}
	pid := cmd.Process.Pid

	var mu sync.Mutex
	var wg sync.WaitGroup
	abort := make(chan struct{})
	var abortOnce sync.Once
	read := func(r io.Reader, fromQemu bool) {
		defer wg.Done()
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			text, err := br.ReadString('\n')
			if text != "" {
				l := parseLine(time.Since(start), text)
				l.Qemu = fromQemu
				mu.Lock()
				res.Lines = append(res.Lines, l)
				prefix := ""
				if fromQemu {
					prefix = "qemu: "
				}
				fmt.Fprintf(logf, "%8.3f %s%s\n", l.At.Seconds(), prefix, l.Text)
				if s.Echo != nil && s.Out != nil && (fromQemu || s.Echo(l)) {
					fmt.Fprintf(s.Out, "  %-16s %7.2f %s%s\n", s.Name, l.At.Seconds(), prefix, l.Text)
				}
				if s.Abort != nil && res.Aborted == "" {
					if why := s.Abort(l); why != "" {
						res.Aborted = why
						abortOnce.Do(func() { close(abort) })
					}
				}
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go read(stdout, false)
	go read(stderr, true)

	done := make(chan error, 1)
	go func() {
		wg.Wait() // the pipes first: Wait closes them
		done <- cmd.Wait()
	}()
	// kill ends our qemu, by pid, and only it.
	kill := func() error {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("qemu did not die after SIGKILL")
		}
	}
	var grace <-chan time.Time
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-abort:
			abort, grace = nil, time.After(abortGrace)
		case <-grace:
			err, waiting = kill(), false
		case <-ctx.Done():
			err, waiting = kill(), false
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				res.TimedOut = true
			} else {
				res.Err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
			}
		}
	}
	res.Elapsed = time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.ExitCode = 0
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	case res.Err == nil:
		res.Err = err
	}
	note := fmt.Sprintf("exit status %d", res.ExitCode)
	switch {
	case res.TimedOut:
		note = fmt.Sprintf("killed after the %s timeout", s.Timeout)
	case res.Aborted != "" && res.ExitCode < 0:
		note = "killed: " + res.Aborted
	case res.Err != nil:
		note = "killed: " + res.Err.Error()
	}
	fmt.Fprintf(logf, "%8.3f # qemu: %s\n", res.Elapsed.Seconds(), note)
	return res
}

// runLine is the line put between two runs of a boot.
func runLine(run, of int) string {
	return fmt.Sprintf("=== qemu run %d of %d, on the same disk", run, of)
}

// runBoots boots s.Runs times (each run with its own console log,
// NAME-N.log) and joins the runs: lines and times go on from where the
// last run ended. It stops after a run that did not exit by itself with
// status 0.
func runBoots(ctx context.Context, s bootSpec) *bootRun {
	if s.DataDisk {
		if err := mkfsData(ctx, s.Drive); err != nil {
			return &bootRun{ExitCode: -1, Err: err}
		}
	}
	if s.Runs <= 1 {
		return runBoot(ctx, s)
	}
	all := &bootRun{}
	base := strings.TrimSuffix(s.Log, ".log")
	for i := 1; i <= s.Runs; i++ {
		one := s
		one.Log = fmt.Sprintf("%s-%d.log", base, i)
		if !all.join(runBoot(ctx, one), i, s.Runs) {
			break
		}
	}
	return all
}

// join appends run i of n to the joined runs: a runLine first (but for
// the first), the lines shifted to after the runs before, the outcome. It
// reports whether the run ended well enough (exit status 0) for the next.
func (all *bootRun) join(r *bootRun, i, n int) bool {
	if i > 1 {
		all.Lines = append(all.Lines, Line{At: all.Elapsed, Text: runLine(i, n), KTime: -1})
	}
	for _, l := range r.Lines {
		l.At += all.Elapsed
		all.Lines = append(all.Lines, l)
	}
	all.Elapsed += r.Elapsed
	all.ExitCode, all.TimedOut, all.Aborted, all.Err = r.ExitCode, r.TimedOut, r.Aborted, r.Err
	if r.Err != nil || r.TimedOut || r.ExitCode != 0 {
		if r.Err == nil && !r.TimedOut && r.Aborted == "" && i < n {
			all.Err = fmt.Errorf("run %d of %d: qemu exit status %d", i, n, r.ExitCode)
		}
		return false
	}
	return true
}

// mkfsData makes an empty ext4 data partition image, labelled "data".
func mkfsData(ctx context.Context, img string) error {
	if err := os.MkdirAll(filepath.Dir(img), 0o755); err != nil {
		return err
	}
	os.Remove(img)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "data", img, "16M").CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 -L data %s: %w\n%s", img, err, out)
	}
	return nil
}

// runInteractive boots with the terminal as the serial console (qemu's
// -nographic: ctrl-a x quits, ctrl-a h lists the other keys).
func runInteractive(ctx context.Context, s bootSpec) error {
	args := append(s.args(), "-nographic")
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-aarch64", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
