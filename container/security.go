package container

import (
	"fmt"
	"sort"
	"strings"
)

// Security is a container's sandbox: what the child stage applies just
// before exec, and what the parent checks afterwards.
type Security struct {
	// Caps are the capabilities the service keeps (names like
	// "CAP_NET_BIND_SERVICE"): its bounding set, and its effective set when
	// it runs as root; a service with a user gets them as ambient
	// capabilities. Nil means DefaultCaps.
	Caps []string `json:"caps,omitempty"`
	// Ambient are the capabilities a service running as a user (not root)
	// gets, as ambient capabilities: the ones its file asks for.
	Ambient []string `json:"ambient,omitempty"`
	// AllCaps keeps every capability (an explicit opt-out).
	AllCaps bool `json:"all_caps,omitempty"`
	// NoNewPrivs forbids gaining privileges through exec (setuid, file
	// capabilities).
	NoNewPrivs bool `json:"no_new_privs,omitempty"`
	// Seccomp installs the default syscall filter.
	Seccomp bool `json:"seccomp,omitempty"`
	// AllowNamespaces lets the service create namespaces (unshare, setns,
	// clone with CLONE_NEW*): off by default, the filter refuses them.
	AllowNamespaces bool `json:"allow_namespaces,omitempty"`
	// Devices are host device nodes bound into the container's /dev.
	Devices []string `json:"devices,omitempty"`
	// Hide are directories of the supervisor's root a service must not
	// see (the data partition, where every service's state lives): each
	// gets an empty private tmpfs, under which the service's own mounts
	// still go.
	Hide []string `json:"hide,omitempty"`
	// Rlimits are applied before exec.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj is the service's oom_score_adj (corral itself runs at
	// -1000; without this the service would inherit that).
	OOMScoreAdj int `json:"oom_score_adj"`
	// Nice, when set, is the service's scheduling priority.
	Nice *int `json:"nice,omitempty"`
	// CPUs, when set, is the service's CPU affinity.
	CPUs []int `json:"cpus,omitempty"`
	// AllowDegraded starts the service even when part of its sandbox did
	// not take effect, marked degraded, instead of failing the start.
	AllowDegraded bool `json:"allow_degraded,omitempty"`
	// FaultNoSeccomp pretends the kernel has no seccomp: the filter is not
	// installed, so the check after start must catch it. For tests only.
	FaultNoSeccomp bool `json:"fault_no_seccomp,omitempty"`
}

// Rlimit is one resource limit.
type Rlimit struct {
	Name     string `json:"name"` // "nofile", "core", ...
	Resource int    `json:"resource"`
	Cur, Max uint64
}

// capNames are the kernel's capability numbers (include/uapi/linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// DefaultCaps is what a service keeps unless its file says otherwise:
// enough to run as root inside its own container (own files, switch user,
// bind low ports, signal its own processes), nothing that reaches outside
// it: no mount or namespace games (SYS_ADMIN), no modules, no raw sockets
// (NET_RAW), no device nodes (MKNOD), no ptrace, no time, no reboot.
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
}

// CapNumber returns a capability's number from its name ("CAP_NET_RAW" or
// "net_raw").
func CapNumber(name string) (int, bool) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capNames {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// CapMask turns names into a bit mask; unknown names are errors.
func CapMask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		i, ok := CapNumber(n)
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", n)
		}
		m |= 1 << uint(i)
	}
	return m, nil
}

// CapNames turns a mask into sorted names (bits past the table as numbers).
func CapNames(mask uint64) []string {
	var out []string
	for i := 0; i < 64; i++ {
		if mask&(1<<uint(i)) == 0 {
			continue
		}
		if i < len(capNames) {
			out = append(out, capNames[i])
		} else {
			out = append(out, fmt.Sprintf("cap_%d", i))
		}
	}
	sort.Strings(out)
	return out
}

// keptCaps is the mask a Security keeps (its bounding set), limited to the
// capabilities this kernel has (lastCap from /proc/sys/kernel/cap_last_cap).
func (s Security) keptCaps(lastCap int) uint64 {
	all := uint64(1)<<uint(lastCap+1) - 1
	if s.AllCaps {
		return all
	}
	names := s.Caps
	if names == nil {
		names = DefaultCaps
	}
	m, _ := CapMask(names)
	return m & all
}

// maskedPaths are hidden inside every container (as runc's defaults):
// kernel memory, keys, timers and debug views a service has no business
// reading; directories get an empty read-only tmpfs, files /dev/null.
var maskedPaths = []string{
	"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
	"/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware",
}

// readOnlyPaths stay visible but read-only: writing /proc/sys would tune
// the host's kernel, /proc/sysrq-trigger would reboot it.
var readOnlyPaths = []string{
	"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs",
}
