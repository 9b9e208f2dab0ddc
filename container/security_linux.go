package container

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lastCap is the kernel's highest capability number.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	return n
}

// applyLimits sets what needs privileges the service may not keep:
// rlimits (raising one needs CAP_SYS_RESOURCE), oom_score_adj, nice and
// CPU affinity. Run before capabilities are dropped.
func applyLimits(s Security) *ChildError {
	for _, r := range s.Rlimits {
		if err := unix.Setrlimit(r.Resource, &unix.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return childErr("setrlimit", r.Name, err)
		}
	}
	// The child stage inherited corral's -1000: set the service's own.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(s.OOMScoreAdj)), 0); err != nil {
		return childErr("write oom_score_adj", strconv.Itoa(s.OOMScoreAdj), err)
	}
	if s.Nice != nil {
		if err := unix.Setpriority(unix.PRIO_PROCESS, 0, *s.Nice); err != nil {
			return childErr("setpriority", strconv.Itoa(*s.Nice), err)
		}
	}
	if len(s.CPUs) > 0 {
		var set unix.CPUSet
		for _, c := range s.CPUs {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return childErr("sched_setaffinity", fmt.Sprint(s.CPUs), err)
		}
		// The kernel takes a mask with at least one usable CPU and drops
		// the rest without a word: read back, and refuse a partial pin.
		var got unix.CPUSet
		if err := unix.SchedGetaffinity(0, &got); err != nil {
			return childErr("sched_getaffinity", "", err)
		}
		var missing []int
		for _, c := range s.CPUs {
			if !got.IsSet(c) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return childErr("sched_setaffinity", fmt.Sprint(s.CPUs), fmt.Errorf("CPUs %v do not exist or are not allowed here", missing))
		}
	}
	return nil
}

// dropBounding removes every capability the service does not keep from
// the bounding set: no exec can ever give them back.
func dropBounding(keep uint64, last int) *ChildError {
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return childErr("drop capability", CapNames(1 << uint(c))[0], err)
		}
	}
	return nil
}

// setCaps sets this thread's (the one that execs) permitted, effective
// and inheritable sets to caps, and raises ambient for a non-root service,
// so caps survive the exec of a program without file capabilities.
func setCaps(caps uint64, ambient bool) *ChildError {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		v := uint32(caps >> (32 * uint(i)))
		data[i] = unix.CapUserData{Effective: v, Permitted: v, Inheritable: v}
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return childErr("capset", strings.Join(CapNames(caps), ","), err)
	}
	if !ambient {
		return nil
	}
	for c := 0; c < 64; c++ {
		if caps&(1<<uint(c)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			return childErr("raise ambient capability", CapNames(1 << uint(c))[0], err)
		}
	}
	return nil
}

// applyFilters sets no_new_privs and installs the seccomp filter: the last
// steps before exec (the filter would refuse the mounts done earlier).
func applyFilters(s Security) *ChildError {
	if s.NoNewPrivs || s.Seccomp {
		// A filter needs no_new_privs (or CAP_SYS_ADMIN, which we dropped).
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return childErr("set no_new_privs", "", err)
		}
	}
	if !s.Seccomp || s.FaultNoSeccomp {
		return nil
	}
	prog, err := seccompProgram(s.AllowNamespaces)
	if err != nil {
		return &ChildError{Op: "seccomp", Msg: err.Error()}
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return childErr("install seccomp filter", "", e)
	}
	return nil
}

// Applied is what /proc/<pid>/status says took effect.
type Applied struct {
	UID                    int
	CapEff, CapBnd, CapAmb uint64
	NoNewPrivs             bool
	Seccomp                int // 0 off, 1 strict, 2 filter
}

// ReadApplied reads a process's credentials and sandbox from
// /proc/<pid>/status.
func ReadApplied(pid int) (Applied, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Applied{}, err
	}
	defer f.Close()
	var a Applied
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Uid":
			if f := strings.Fields(v); len(f) > 0 {
				a.UID, _ = strconv.Atoi(f[0])
			}
		case "CapEff":
			a.CapEff, _ = strconv.ParseUint(v, 16, 64)
		case "CapBnd":
			a.CapBnd, _ = strconv.ParseUint(v, 16, 64)
		case "CapAmb":
			a.CapAmb, _ = strconv.ParseUint(v, 16, 64)
		case "NoNewPrivs":
			a.NoNewPrivs = v == "1"
		case "Seccomp":
			a.Seccomp, _ = strconv.Atoi(v)
		}
	}
	return a, sc.Err()
}

// verify compares what took effect with what was asked for and lists
// every difference: nothing may be silently weaker than the file says.
func (s Security) verify(a Applied, root bool, last int) []string {
	keep := s.keptCaps(last)
	var out []string
	if a.CapBnd&^keep != 0 {
		out = append(out, "capability bounding set has "+strings.Join(CapNames(a.CapBnd&^keep), ",")+" beyond what was asked")
	}
	wantEff := keep
	if !root {
		wantEff, _ = CapMask(s.Ambient)
	}
	if a.CapEff&^wantEff != 0 {
		out = append(out, "effective capabilities include "+strings.Join(CapNames(a.CapEff&^wantEff), ",")+" beyond what was asked")
	}
	if missing := wantEff &^ a.CapEff & keep; missing != 0 {
		out = append(out, "effective capabilities lack "+strings.Join(CapNames(missing), ","))
	}
	if (s.NoNewPrivs || s.Seccomp) && !a.NoNewPrivs {
		out = append(out, "no_new_privs is not set")
	}
	if s.Seccomp && a.Seccomp != 2 {
		out = append(out, fmt.Sprintf("the seccomp filter is not installed (Seccomp: %d)", a.Seccomp))
	}
	return out
}

// checkApplied reads back what took effect for a started process and
// lists every difference from the Spec: the sandbox, the namespaces and
// the cgroup limits. A process that already exited is not an error (a
// one-shot may be that fast); it is simply not checked.
func (p *Process) checkApplied(spec Spec) []string {
	pid := p.MainPid()
	a, err := ReadApplied(pid)
	if err != nil {
		return nil
	}
	root := a.UID == 0
	nss := []string{"pid", "mnt", "uts", "ipc", "cgroup"}
	if m := spec.UserNS; m != nil {
		root = a.UID == int(m.HostID) // its root, as the host sees it
		nss = append(nss, "user")
		if uid, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid)); !strings.Contains(strings.Join(strings.Fields(string(uid)), " "), fmt.Sprintf("0 %d %d", m.HostID, m.Size)) {
			out := []string{fmt.Sprintf("uid_map is %q, not 0 %d %d", strings.TrimSpace(string(uid)), m.HostID, m.Size)}
			return append(out, spec.Security.verify(a, root, lastCap())...)
		}
	}
	out := spec.Security.verify(a, root, lastCap())
	if !spec.HostNetwork {
		nss = append(nss, "net")
	}
	for _, ns := range nss {
		mine, err1 := os.Readlink("/proc/self/ns/" + ns)
		its, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 == nil && err2 == nil && mine == its {
			out = append(out, "the service shares corral's "+ns+" namespace")
		}
	}
	out = append(out, p.Group.checkLimits(spec.Limits)...)
	return out
}

// SandboxError is a start refused because part of the sandbox or the
// limits did not take effect.
type SandboxError struct{ Problems []string }

func (e *SandboxError) Error() string {
	return "sandbox not applied: " + strings.Join(e.Problems, "; ")
}
