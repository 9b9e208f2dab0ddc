package container

import (
	"fmt"
	"path/filepath"
	"strings"
)

// stepKind is one kind of step in a container's mount plan.
type stepKind uint8

const (
	stepBindTree  stepKind = iota // clone a tree (recursively), optionally read-only, onto Target
	stepMount                     // mount(2) a fresh file system
	stepMkdir                     // create a directory (inside a tmpfs we made)
	stepMknod                     // create a character device
	stepSymlink                   // create a symlink Target -> Source
	stepRemountRO                 // make the mount at Target read-only
	stepDetach                    // lazily unmount whatever the root's clone had at Target
	stepMask                      // hide Target: /dev/null over a file, an empty read-only tmpfs over a directory
	stepBindFile                  // bind a file read-only over Show, resolved inside the root at Target
)

// mountStep is one row of the plan. Paths are absolute in the supervisor's
// view (under the staging directory); Show is the path the service sees.
type mountStep struct {
	Kind   stepKind
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	RO     bool
	Mode   uint32 // mknod / mkdir
	Dev    uint64 // mknod
	// Create: make the target (dir or file) if missing.
	Create bool
	// SourceFD, when above 2, is an fd of Source to clone from instead of
	// its path (bindTree and bindFile only).
	SourceFD int
	// Optional: skip the step when the target does not exist (a /proc
	// file this kernel does not have).
	Optional bool
	Show     string
}

func (s mountStep) String() string {
	switch s.Kind {
	case stepBindTree:
		ro := "rw"
		if s.RO {
			ro = "ro"
		}
		return fmt.Sprintf("bind %s -> %s (%s)", s.Source, s.Show, ro)
	case stepMount:
		return fmt.Sprintf("mount %s on %s (%s)", s.FSType, s.Show, s.Data)
	case stepMkdir:
		return "mkdir " + s.Show
	case stepMknod:
		return fmt.Sprintf("mknod %s c %d:%d", s.Show, s.Dev>>8, s.Dev&0xff)
	case stepSymlink:
		return fmt.Sprintf("symlink %s -> %s", s.Show, s.Source)
	case stepRemountRO:
		return "remount-ro " + s.Show
	case stepDetach:
		return "detach " + s.Show
	case stepMask:
		return "mask " + s.Show
	case stepBindFile:
		return fmt.Sprintf("bind file %s -> %s (ro, resolved in the root)", s.Source, s.Show)
	}
	return "?"
}

// Mount flags, spelled out so the plan is portable and unit-tested on any
// OS; the values are Linux's.
const (
	msRdonly uintptr = 0x1
	msNosuid uintptr = 0x2
	msNodev  uintptr = 0x4
	msNoexec uintptr = 0x8
)

// devices made in every container's /dev (major, minor).
var devices = []struct {
	name         string
	major, minor uint64
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// NotifyMount is where the service's notify directory appears.
const NotifyMount = "/run/notify"

// mountPlan returns the ordered steps that build a container's root at
// root (the staging directory). Order matters: the read-only root first,
// then fresh kernel and tmpfs mounts on top of it, then the notify
// directory inside the new /run, then the files (/etc/hosts, resolv.conf:
// after /tmp and /run, where a symlinked target may point), then the
// service's own mounts, so a service may mount into /run or /tmp, or
// bring its own /etc/hosts.
func mountPlan(cfg childConfig, root string) []mountStep {
	in := func(p string) string { return filepath.Join(root, p) }
	src := cfg.Spec.Rootfs
	if src == "" {
		src = "/"
	}
	steps := []mountStep{
		{Kind: stepBindTree, Source: src, Target: root, RO: true, Show: "/"},
	}
	// The clone of the supervisor's root brings its /proc, /sys (with the
	// cgroup hierarchies), /dev, /run and /tmp along. Drop them before
	// mounting fresh ones: nothing of the host's stays even hidden below,
	// and the kernel refuses to stack the same sysfs superblock (a shared
	// network namespace) on a mount of itself.
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp"} {
		steps = append(steps, mountStep{Kind: stepDetach, Target: in(d), Show: d})
	}
	steps = append(steps, []mountStep{
		{Kind: stepMount, FSType: "proc", Source: "proc", Target: in("/proc"), Flags: msNosuid | msNodev | msNoexec, Show: "/proc"},
		// sysfs of a shared network namespace is the host's superblock:
		// asking for it read-only at mount time would change it for the
		// host (EBUSY), so make only this mount read-only, afterwards.
		sysStep(cfg, in("/sys")),
		{Kind: stepRemountRO, Target: in("/sys"), Flags: msNosuid | msNodev | msNoexec, Show: "/sys"},
		{Kind: stepMount, FSType: "tmpfs", Source: "tmpfs", Target: in("/dev"), Flags: msNosuid | msNoexec, Data: "mode=755,size=65536k", Show: "/dev"},
	}...)
	for _, d := range devices {
		if cfg.Spec.UserNS != nil {
			// mknod is not for a user namespace: bind the host's node.
			steps = append(steps, mountStep{Kind: stepBindTree, Source: "/dev/" + d.name, Target: in("/dev/" + d.name), Create: true, Show: "/dev/" + d.name})
			continue
		}
		steps = append(steps, mountStep{Kind: stepMknod, Target: in("/dev/" + d.name), Mode: 0o666, Dev: d.major<<8 | d.minor, Show: "/dev/" + d.name})
	}
	steps = append(steps,
		mountStep{Kind: stepMkdir, Target: in("/dev/pts"), Mode: 0o755, Show: "/dev/pts"},
		mountStep{Kind: stepMount, FSType: "devpts", Source: "devpts", Target: in("/dev/pts"), Flags: msNosuid | msNoexec, Data: "newinstance,ptmxmode=0666,mode=0620", Show: "/dev/pts"},
		mountStep{Kind: stepSymlink, Source: "pts/ptmx", Target: in("/dev/ptmx"), Show: "/dev/ptmx"},
		mountStep{Kind: stepMkdir, Target: in("/dev/shm"), Mode: 0o1777, Show: "/dev/shm"},
		mountStep{Kind: stepMount, FSType: "tmpfs", Source: "shm", Target: in("/dev/shm"), Flags: msNosuid | msNodev, Data: "mode=1777,size=65536k", Show: "/dev/shm"},
		mountStep{Kind: stepSymlink, Source: "/proc/self/fd", Target: in("/dev/fd"), Show: "/dev/fd"},
		mountStep{Kind: stepSymlink, Source: "/proc/self/fd/0", Target: in("/dev/stdin"), Show: "/dev/stdin"},
		mountStep{Kind: stepSymlink, Source: "/proc/self/fd/1", Target: in("/dev/stdout"), Show: "/dev/stdout"},
		mountStep{Kind: stepSymlink, Source: "/proc/self/fd/2", Target: in("/dev/stderr"), Show: "/dev/stderr"},
		mountStep{Kind: stepMount, FSType: "tmpfs", Source: "tmpfs", Target: in("/tmp"), Flags: msNosuid | msNodev, Data: "mode=1777", Show: "/tmp"},
		mountStep{Kind: stepMount, FSType: "tmpfs", Source: "tmpfs", Target: in("/run"), Flags: msNosuid | msNodev, Data: "mode=755", Show: "/run"},
	)
	// The sandbox's view of the kernel: hidden and read-only paths, then the
	// devices the service asked for (bound from the host's /dev).
	for _, m := range maskedPaths {
		steps = append(steps, mountStep{Kind: stepMask, Source: in("/dev/null"), Target: in(m), Optional: true, Show: m})
	}
	for _, r := range readOnlyPaths {
		steps = append(steps, mountStep{Kind: stepBindTree, Source: in(r), Target: in(r), RO: true, Optional: true, Show: r})
	}
	for _, h := range cfg.Spec.Security.Hide {
		steps = append(steps, mountStep{Kind: stepMount, FSType: "tmpfs", Source: "tmpfs", Target: in(h), Flags: msNosuid | msNodev, Data: "mode=755,size=1m", Optional: true, Show: h})
	}
	for _, d := range cfg.Spec.Security.Devices {
		steps = append(steps, mountStep{Kind: stepBindTree, Source: d, Target: in(d), Create: true, Show: d})
	}
	if cfg.NotifyDir != "" {
		steps = append(steps,
			mountStep{Kind: stepMkdir, Target: in(NotifyMount), Mode: 0o755, Show: NotifyMount},
			mountStep{Kind: stepBindTree, Source: cfg.NotifyDir, SourceFD: cfg.NotifyFD, Target: in(NotifyMount), RO: true, Show: NotifyMount},
		)
	}
	for _, f := range cfg.Files {
		t := filepath.Clean("/" + strings.TrimPrefix(f.Target, "/"))
		steps = append(steps, mountStep{Kind: stepBindFile, Source: f.Source, SourceFD: f.FD, Target: root, RO: true, Optional: f.Optional, Show: t})
	}
	for _, m := range cfg.Spec.Mounts {
		t := filepath.Clean("/" + strings.TrimPrefix(m.Target, "/"))
		switch m.Type {
		case MountTmpfs:
			data := "mode=755"
			if m.Size > 0 {
				data += fmt.Sprintf(",size=%d", m.Size)
			}
			flags := msNosuid | msNodev
			if m.ReadOnly {
				flags |= msRdonly
			}
			steps = append(steps, mountStep{Kind: stepMount, FSType: "tmpfs", Source: "tmpfs", Target: in(t), Flags: flags, Data: data, Create: true, Show: t})
		default:
			steps = append(steps, mountStep{Kind: stepBindTree, Source: m.Source, Target: in(t), RO: m.ReadOnly, Create: true, Show: t})
		}
	}
	return steps
}

// sysStep mounts a fresh sysfs, except for a user-namespaced service on
// the host's network: sysfs belongs to a network namespace, and that one
// is not the service's user namespace's to mount, so the host's /sys is
// bound instead (read-only, as always).
func sysStep(cfg childConfig, target string) mountStep {
	if cfg.Spec.UserNS != nil && cfg.Spec.HostNetwork {
		return mountStep{Kind: stepBindTree, Source: "/sys", Target: target, RO: true, Show: "/sys"}
	}
	return mountStep{Kind: stepMount, FSType: "sysfs", Source: "sysfs", Target: target, Flags: msNosuid | msNodev | msNoexec, Show: "/sys"}
}
