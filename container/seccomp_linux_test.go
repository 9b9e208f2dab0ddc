package container

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// run interprets the classic BPF subset the filter uses over a
// struct seccomp_data.
func run(t *testing.T, prog []unix.SockFilter, nr uint32, arch uint32, arg0 uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[0:], nr)
	binary.LittleEndian.PutUint32(data[4:], arch)
	binary.LittleEndian.PutUint64(data[16:], arg0)
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLdWAbs:
			a = binary.LittleEndian.Uint32(data[in.K:])
		case bpfJeqK, bpfJgeK, bpfJsetK:
			cond := map[uint16]bool{bpfJeqK: a == in.K, bpfJgeK: a >= in.K, bpfJsetK: a&in.K != 0}[in.Code]
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRetK:
			return in.K
		default:
			t.Fatalf("unexpected instruction %+v at %d", in, pc)
		}
	}
	t.Fatalf("fell off the end of the program (nr %d)", nr)
	return 0
}

func TestSeccompProgram(t *testing.T) {
	prog, err := seccompProgram(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog) > 4096 {
		t.Fatalf("program too long: %d", len(prog))
	}
	tests := []struct {
		name string
		nr   uintptr
		arch uint32
		arg0 uint64
		want uint32
	}{
		{"read is allowed", unix.SYS_READ, auditArch, 0, retAllow},
		{"execve is allowed", unix.SYS_EXECVE, auditArch, 0, retAllow},
		{"mount is refused", unix.SYS_MOUNT, auditArch, 0, retEPERM},
		{"finit_module is refused", unix.SYS_FINIT_MODULE, auditArch, 0, retEPERM},
		{"reboot is refused", unix.SYS_REBOOT, auditArch, 0, retEPERM},
		{"the last denied syscall is refused", deniedSyscalls[len(deniedSyscalls)-1], auditArch, 0, retEPERM},
		{"unshare is refused", unix.SYS_UNSHARE, auditArch, 0, retEPERM},
		{"a plain clone (fork, thread) is allowed", unix.SYS_CLONE, auditArch, uint64(unix.SIGCHLD) | unix.CLONE_VM | unix.CLONE_THREAD, retAllow},
		{"clone with a new netns is refused", unix.SYS_CLONE, auditArch, unix.CLONE_NEWNET | uint64(unix.SIGCHLD), retEPERM},
		{"clone3 says ENOSYS", unix.SYS_CLONE3, auditArch, 0, retNOSYS},
		{"another architecture is killed", unix.SYS_READ, auditArch ^ 1, 0, retKill},
	}
	if x32Bit != 0 {
		tests = append(tests, struct {
			name string
			nr   uintptr
			arch uint32
			arg0 uint64
			want uint32
		}{"an x32 syscall is refused", x32Bit | unix.SYS_READ, auditArch, 0, retEPERM})
	}
	for _, tt := range tests {
		if got := run(t, prog, uint32(tt.nr), tt.arch, tt.arg0); got != tt.want {
			t.Errorf("%s: got %#x, want %#x", tt.name, got, tt.want)
		}
	}
	open, _ := seccompProgram(true)
	if got := run(t, open, unix.SYS_UNSHARE, auditArch, 0); got != retAllow {
		t.Errorf("allow_namespaces: unshare got %#x", got)
	}
	if got := run(t, open, unix.SYS_CLONE, auditArch, unix.CLONE_NEWNET); got != retAllow {
		t.Errorf("allow_namespaces: clone(NEWNET) got %#x", got)
	}
	if got := run(t, open, unix.SYS_MOUNT, auditArch, 0); got != retEPERM {
		t.Errorf("allow_namespaces still refuses mount: got %#x", got)
	}
}
