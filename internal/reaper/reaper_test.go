package reaper

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// The reaper must deliver the exit status of a child that exits before
// Start returns, and never lose one to a race.
func TestStartDeliversExitCodes(t *testing.T) {
	r := New()
	defer r.Close()
	const n = 50
	got := make(chan Exit, n)
	want := map[int]int{}
	for i := 0; i < n; i++ {
		code := i % 7
		pid, err := r.Start(func() (int, error) {
			return syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit " + string(rune('0'+code))},
				&syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		}, func(e Exit) { got <- e })
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		want[pid] = code
	}
	deadline := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case e := <-got:
			code, ok := want[e.Pid]
			if !ok {
				t.Fatalf("exit for unknown pid %d", e.Pid)
			}
			if e.Code() != code {
				t.Errorf("pid %d: got exit code %d, want %d", e.Pid, e.Code(), code)
			}
			delete(want, e.Pid)
		case <-deadline:
			t.Fatalf("%d exits never delivered", len(want))
		}
	}
}

func TestSignalledExit(t *testing.T) {
	r := New()
	defer r.Close()
	got := make(chan Exit, 1)
	pid, err := r.Start(func() (int, error) {
		return syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
	}, func(e Exit) { got <- e })
	if err != nil {
		t.Fatal(err)
	}
	p, _ := os.FindProcess(pid)
	_ = p.Signal(syscall.SIGKILL)
	select {
	case e := <-got:
		if e.Signal() != syscall.SIGKILL || e.Code() != -1 {
			t.Errorf("got signal %v code %d, want SIGKILL -1", e.Signal(), e.Code())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exit never delivered")
	}
}
