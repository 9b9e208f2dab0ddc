package container

import (
	"errors"

	"golang.org/x/sys/unix"
)

// The default seccomp filter refuses (EPERM) the syscalls a service on an
// appliance has no use for and that reach past its container: kernel
// modules, kexec, reboot, the mount family, bpf, perf, the keyring,
// ptrace, swap, accounting, setting the clock, file handles, userfaultfd,
// the kernel log; and, unless the service asks, namespace changes
// (unshare, setns, clone with CLONE_NEW* flags; clone3, whose flags a
// classic filter cannot read, answers ENOSYS so libc falls back to clone).
// Everything else is allowed. A syscall of another architecture (x32 on
// x86_64) is refused too.
var deniedSyscalls = append([]uintptr{
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_MOVE_MOUNT,
	unix.SYS_OPEN_TREE, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT,
	unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_USERFAULTFD, unix.SYS_SYSLOG,
	unix.SYS_VHANGUP, unix.SYS_QUOTACTL, unix.SYS_LOOKUP_DCOOKIE,
}, archDeniedSyscalls...)

var namespaceSyscalls = []uintptr{unix.SYS_UNSHARE, unix.SYS_SETNS}

// cloneNewMask is every CLONE_NEW* flag.
const cloneNewMask = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// BPF pieces (linux/filter.h, linux/seccomp.h).
const (
	bpfLdWAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJgeK   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRetK   = unix.BPF_RET | unix.BPF_K

	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

	// offsets in struct seccomp_data
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits on a little-endian machine (both of ours)
)

// errNoSeccompArch: corral has no filter for this architecture.
var errNoSeccompArch = errors.New("no seccomp filter for this architecture")

// seccompProgram builds the default filter. It is plain data, unit-tested
// by running it through a small BPF interpreter.
func seccompProgram(allowNamespaces bool) ([]unix.SockFilter, error) {
	if auditArch == 0 {
		return nil, errNoSeccompArch
	}
	deny := append([]uintptr(nil), deniedSyscalls...)
	if !allowNamespaces {
		deny = append(deny, namespaceSyscalls...)
	}
	st := func(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
		return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
	}
	var p []unix.SockFilter
	p = append(p,
		st(bpfLdWAbs, offArch, 0, 0),
		st(bpfJeqK, auditArch, 1, 0),
		st(bpfRetK, retKill, 0, 0),
		st(bpfLdWAbs, offNr, 0, 0),
	)
	if x32Bit != 0 {
		p = append(p, st(bpfJgeK, x32Bit, 0, 1), st(bpfRetK, retEPERM, 0, 0))
	}
	// Then: one jeq per denied syscall, jumping to the shared "deny" at the
	// end; clone to its flag check; clone3 to ENOSYS; else allow.
	n := len(deny)
	cloneChecks := !allowNamespaces
	// Layout after the denies: [allow] [deny] [nosys] [clone: ld arg0] [jset] [allow]
	tailAllow := len(p) + n + boolInt(cloneChecks)*2
	for _, nr := range deny {
		here := len(p)
		p = append(p, st(bpfJeqK, uint32(nr), uint8(tailAllow+1-here-1), 0))
	}
	if cloneChecks {
		here := len(p)
		p = append(p, st(bpfJeqK, uint32(unix.SYS_CLONE), uint8(tailAllow+3-here-1), 0))
		here = len(p)
		p = append(p, st(bpfJeqK, uint32(unix.SYS_CLONE3), uint8(tailAllow+2-here-1), 0))
	}
	p = append(p,
		st(bpfRetK, retAllow, 0, 0), // tailAllow
		st(bpfRetK, retEPERM, 0, 0), // tailAllow+1: deny
		st(bpfRetK, retNOSYS, 0, 0), // tailAllow+2: clone3
	)
	if cloneChecks {
		p = append(p,
			st(bpfLdWAbs, offArg0, 0, 0),             // tailAllow+3
			st(bpfJsetK, uint32(cloneNewMask), 0, 1), // new namespaces?
			st(bpfRetK, retEPERM, 0, 0),              // yes: refuse
			st(bpfRetK, retAllow, 0, 0),              // no: a plain fork or thread
		)
	}
	return p, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
