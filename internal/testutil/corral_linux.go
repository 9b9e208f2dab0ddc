package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor/api"
)

// Corral is a corral binary running as PID 1 of fresh pid, mount, net,
// uts and ipc namespaces, the way the demo runs it. Cleanup shuts it down
// (SIGTERM, then SIGKILL, which takes the whole pid namespace) and removes
// its cgroup subtree if it was left behind.
type Corral struct {
	t      testing.TB
	cmd    *exec.Cmd
	Pid    int // host pid (PID 1 inside)
	Config string
	Prefix string // cgroup subtree name, unique per test
	Client *api.Client
	log    *SyncBuffer
	exited chan struct{}
	err    error
}

// SyncBuffer is a bytes.Buffer that a process's output and a test's
// reads may share: corral's console output, a background command's.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StartCorral starts corral on the config directory dir and waits for its
// control socket.
func StartCorral(t testing.TB, dir string) *Corral {
	t.Helper()
	return StartCorralIn(t, dir, "")
}

// StartCorralIn is StartCorral in the network namespace at netns (a path
// such as NetNS.Path(), which the test prepared: an uplink, say) instead
// of a fresh one; "" is a fresh one. nsenter joins it and execs corral,
// which stays PID 1 of its new pid namespace.
func StartCorralIn(t testing.TB, dir, netns string) *Corral {
	t.Helper()
	RequireRoot(t)
	bin, _ := Binaries(t)
	prefix := fmt.Sprintf("corral-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	c := &Corral{t: t, Config: dir, Prefix: prefix, log: &SyncBuffer{}, exited: make(chan struct{})}
	args := []string{"--config", dir, "--log-format", "json", "--log-level", "debug", "--cgroup-prefix", prefix}
	flags := uintptr(syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC)
	if netns != "" {
		args = append([]string{"--net=" + netns, "--", bin}, args...)
		bin, flags = "nsenter", flags&^syscall.CLONE_NEWNET
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), "container=corral-test")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		// No Pdeathsig: it fires when the forking *thread* exits, and tests
		// lock and retire threads for network namespaces. Cleanup stops it.
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start corral: %v", err)
	}
	c.Pid = c.cmd.Process.Pid
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.cleanup)
	c.Client = api.NewClient(c.Socket())
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.Client.Status(); err == nil {
			return c
		}
		select {
		case <-c.exited:
			t.Fatalf("corral exited early (%v):\n%s", c.err, c.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("corral's socket never answered:\n%s", c.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Socket is the control socket, reached through corral's own root.
func (c *Corral) Socket() string {
	return filepath.Join("/proc", strconv.Itoa(c.Pid), "root/run/corral/corral.sock")
}

// NetNS is the path of corral's network namespace, for nsenter --net=.
func (c *Corral) NetNS() string { return fmt.Sprintf("/proc/%d/ns/net", c.Pid) }

// Log returns everything corral printed so far.
func (c *Corral) Log() string { return c.log.String() }

// Stop asks corral to shut down and waits for it to exit.
func (c *Corral) Stop(timeout time.Duration) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.err
	case <-time.After(timeout):
		return errors.New("corral did not exit after SIGTERM")
	}
}

// Exited is closed when corral's process has exited.
func (c *Corral) Exited() <-chan struct{} { return c.exited }

func (c *Corral) cleanup() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	if c.t.Failed() {
		c.t.Logf("corral's log:\n%s", c.Log())
	}
	RemoveCgroupTree(c.t, c.Prefix)
}

// CgroupDirs returns every directory of a corral cgroup subtree named
// prefix, in every mounted hierarchy.
func CgroupDirs(prefix string) []string {
	var out []string
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == prefix {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// RemoveCgroupTree removes a leftover subtree (children first), killing
// what is still in it: only processes of this test can be there.
func RemoveCgroupTree(t testing.TB, prefix string) {
	for _, root := range CgroupDirs(prefix) {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if b, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			for j := 0; j < 100; j++ {
				if err := os.Remove(dirs[i]); err == nil || errors.Is(err, fs.ErrNotExist) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// WaitFor polls corral's status until cond holds or the timeout passes.
func (c *Corral) WaitFor(timeout time.Duration, what string, cond func(api.StatusReply) bool) api.StatusReply {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last api.StatusReply
	for {
		rep, err := c.Client.Status()
		if err == nil {
			last = rep
			if cond(rep) {
				return rep
			}
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("timed out waiting for %s; last status: %+v\nlog:\n%s", what, last, c.Log())
		case <-c.exited:
			c.t.Fatalf("corral exited while waiting for %s:\n%s", what, c.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Svc returns one service from a status reply (the zero value if absent).
func Svc(rep api.StatusReply, name string) api.Service {
	for _, s := range rep.Services {
		if s.Name == name {
			return s
		}
	}
	return api.Service{}
}

// WriteConfig writes corral.toml and services/NAME.toml files into a fresh
// directory and returns it.
func WriteConfig(t testing.TB, global string, services map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "services"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "corral.toml"), []byte(global), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, body := range services {
		if err := os.WriteFile(filepath.Join(dir, "services", name+".toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// InNetNSPath runs fn on a fresh OS thread that has joined the network
// namespace at path (e.g. Corral.NetNS()). The thread is never unlocked,
// so it dies with the goroutine; sockets fn opens stay in that namespace.
func InNetNSPath(path string, fn func() error) error {
	var err error
	onDisposableThread(func() {
		f, oerr := os.Open(path)
		if oerr != nil {
			err = oerr
			return
		}
		defer f.Close()
		if serr := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); serr != nil {
			err = fmt.Errorf("setns %s: %w", path, serr)
			return
		}
		err = fn()
	})
	return err
}
