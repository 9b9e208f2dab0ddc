package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// mode is how corral was started.
type mode uint8

const (
	// modeMachine: PID 1 of the machine. Every PID-1 duty applies.
	modeMachine mode = iota
	// modeContainer: PID 1 of a pid namespace (the demo, the tests, or a
	// container manager that sets $container, as systemd defines it).
	// Machine-only steps are skipped and shutdown exits instead of
	// rebooting.
	modeContainer
	// modeSupervisor: not PID 1; a subreaper for its services.
	modeSupervisor
)

func (m mode) String() string {
	return [...]string{"machine", "container", "supervisor"}[m]
}

func detectMode() mode {
	switch {
	case os.Getpid() != 1:
		return modeSupervisor
	case os.Getenv("container") != "":
		return modeContainer
	}
	// PID 1 with a /proc that shows another pid namespace's view: we are
	// in a pid namespace that was made without setting $container.
	if self, err := os.Readlink("/proc/self"); err == nil && self != "1" {
		return modeContainer
	}
	return modeMachine
}

// mountEntry is one row of the early-boot mount plan.
type mountEntry struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Mode                   os.FileMode // of the mount point, if corral creates it
}

func (e mountEntry) String() string {
	return fmt.Sprintf("%-8s on %-15s (%s)", e.FSType, e.Target, e.Data)
}

// machineMounts is what PID 1 of a machine mounts, in order. The kernel
// may already have mounted some (devtmpfs with CONFIG_DEVTMPFS_MOUNT);
// those are skipped.
func machineMounts() []mountEntry {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV
	return []mountEntry{
		{"proc", "/proc", "proc", nsd | unix.MS_NOEXEC, "", 0o555},
		{"sysfs", "/sys", "sysfs", nsd | unix.MS_NOEXEC, "", 0o555},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666", 0o755},
		{"tmpfs", "/dev/shm", "tmpfs", nsd, "mode=1777", 0o1777},
		{"tmpfs", "/run", "tmpfs", nsd, "mode=0755", 0o755},
		{"tmpfs", "/tmp", "tmpfs", nsd, "mode=1777", 0o1777},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", nsd | unix.MS_NOEXEC, "nsdelegate", 0o555},
	}
}

// mountMissing mounts every entry whose target is not a mount point yet.
func mountMissing(entries []mountEntry, log zerolog.Logger) error {
	var errs []error
	for _, e := range entries {
		mounted, _ := mountPoints()
		if mounted[e.Target] {
			log.Debug().Str("target", e.Target).Msg("already mounted")
			continue
		}
		if err := os.MkdirAll(e.Target, e.Mode); err != nil && !errors.Is(err, os.ErrExist) {
			errs = append(errs, fmt.Errorf("create mount point %s: %w", e.Target, err))
			continue
		}
		if err := unix.Mount(e.Source, e.Target, e.FSType, e.Flags, e.Data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", e.FSType, e.Target, err))
			continue
		}
		log.Debug().Str("target", e.Target).Str("fstype", e.FSType).Msg("mounted")
	}
	return errors.Join(errs...)
}

// mountPoints reads the current mount points from /proc/self/mountinfo.
func mountPoints() (map[string]bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return map[string]bool{}, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 {
			out[fs[4]] = true
		}
	}
	return out, sc.Err()
}

// mountList returns the mount points in mount order.
func mountList() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 {
			out = append(out, fs[4])
		}
	}
	return out
}

// privacy says which of corral's namespaces are its own (not the host's).
type privacy struct{ mnt, net, uts bool }

// prepareContainer is early boot for a pid namespace. With the parent's
// /proc still mounted we can compare our namespaces with the host's init
// and refuse to mount anything in a shared mount namespace. Then a fresh
// /proc (pids of our namespace, needed to check notify senders) and a
// private /run.
func prepareContainer(log zerolog.Logger) (privacy, error) {
	p := privacy{true, true, true}
	self, err := os.Readlink("/proc/self")
	if err == nil && self != "1" {
		same := func(ns string) bool {
			a, err1 := os.Readlink("/proc/self/ns/" + ns)
			b, err2 := os.Readlink("/proc/1/ns/" + ns)
			return err1 == nil && err2 == nil && a == b
		}
		p = privacy{mnt: !same("mnt"), net: !same("net"), uts: !same("uts")}
		if !p.mnt {
			return p, errors.New("corral is PID 1 of a pid namespace but shares the host's mount namespace: start it with unshare --mount (or --mount-proc)")
		}
		if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return p, fmt.Errorf("mount proc for this pid namespace: %w", err)
		}
	} else if err != nil {
		return p, fmt.Errorf("read /proc/self: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return p, fmt.Errorf("mount a private /run: %w", err)
	}
	if !p.net {
		log.Warn().Msg("sharing the host's network namespace: no bridge, lo untouched")
	}
	if !p.uts {
		log.Warn().Msg("sharing the host's UTS namespace: hostname left alone")
	}
	return p, nil
}

// prepareMachine is early boot for PID 1 of a machine.
func prepareMachine(log zerolog.Logger) error {
	err := mountMissing(machineMounts(), log)
	// The kernel starts init with fds 0-2 on /dev/console only if the
	// initramfs had one; make sure they are usable now that /dev is.
	if _, ferr := unix.FcntlInt(0, unix.F_GETFD, 0); ferr != nil {
		if fd, oerr := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); oerr == nil {
			for i := 0; i < 3; i++ {
				_ = unix.Dup3(fd, i, 0)
			}
			if fd > 2 {
				unix.Close(fd)
			}
		}
	}
	// Ctrl-Alt-Del becomes SIGINT to PID 1 (a reboot request) instead of
	// an immediate reset.
	if rerr := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); rerr != nil {
		log.Warn().Err(rerr).Msg("disable ctrl-alt-del")
	}
	return err
}

// hostnameFor picks the hostname: the config's, else /etc/hostname's.
func hostnameFor(configured string) string {
	if configured != "" {
		return configured
	}
	if b, err := os.ReadFile("/etc/hostname"); err == nil {
		if h := strings.TrimSpace(string(b)); h != "" {
			return h
		}
	}
	return ""
}
