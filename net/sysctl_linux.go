package net

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// sysctls changes values under /proc/sys/net of one network namespace (the
// supervisor's) and remembers what they were before, in memory and in a
// state file, so that restore puts them back, also on the next start
// after a crash (recover).
//
// /proc/sys/net shows the network namespace of the thread that opens a
// file, not of the process, so every access runs on a thread that has
// joined nsFD (inNetNS): a goroutine of the caller may be on any thread,
// and in the tests the caller's threads are in the host's namespace.
type sysctls struct {
	nsFD int
	file string // state file; "" keeps the saved values in memory only

	mu    sync.Mutex
	saved map[string]string // path under /proc/sys -> value before corral
	order []string          // paths in the order they were first changed
}

const procSys = "/proc/sys/"

// forwardingPath is the IPv4 forwarding switch of one interface. IPv4
// decides per input interface (ip_route_input_slow checks the input
// device's flag); net.ipv4.ip_forward is conf/all/forwarding, and writing
// it rewrites every interface's flag, so corral never writes it.
func forwardingPath(ifname string) string {
	return "net/ipv4/conf/" + ifname + "/forwarding"
}

// set writes each value to its path (pairs of path, value), after
// remembering what was there (only the first time: a second set keeps the
// value from before corral). One thread, one state file write.
func (s *sysctls) set(pathValues ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return inNetNS(s.nsFD, func() error {
		changed := false
		for i := 0; i+1 < len(pathValues); i += 2 {
			path := pathValues[i]
			if _, ok := s.saved[path]; ok {
				continue
			}
			old, err := os.ReadFile(procSys + path)
			if err != nil {
				return fmt.Errorf("read %s: %w", strings.ReplaceAll(path, "/", "."), err)
			}
			if s.saved == nil {
				s.saved = map[string]string{}
			}
			s.saved[path] = strings.TrimSpace(string(old))
			s.order = append(s.order, path)
			changed = true
		}
		if changed {
			if err := s.persist(); err != nil {
				return err
			}
		}
		for i := 0; i+1 < len(pathValues); i += 2 {
			path, value := pathValues[i], pathValues[i+1]
			if err := os.WriteFile(procSys+path, []byte(value), 0); err != nil {
				return fmt.Errorf("set %s=%s: %w", strings.ReplaceAll(path, "/", "."), value, err)
			}
		}
		return nil
	})
}

// restore puts back every value set changed, newest first, and forgets
// them. A value whose file is gone (the interface was removed) needs no
// restoring.
func (s *sysctls) restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return nil
	}
	err := inNetNS(s.nsFD, func() error {
		var errs []error
		for _, p := range slices.Backward(s.order) {
			if err := os.WriteFile(procSys+p, []byte(s.saved[p]), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("restore %s=%s: %w", strings.ReplaceAll(p, "/", "."), s.saved[p], err))
			}
		}
		return errors.Join(errs...)
	})
	s.saved, s.order = nil, nil
	if rerr := s.remove(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}

// recoverLeftovers restores the values a previous run recorded in the state file
// and did not get to restore (it was killed), then removes the file.
func (s *sysctls) recoverLeftovers() (restored []string, err error) {
	if s.file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.file, err)
	}
	s.mu.Lock()
	for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
		p, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(p, "net/") || strings.Contains(p, "..") {
			continue
		}
		if s.saved == nil {
			s.saved = map[string]string{}
		}
		s.saved[p] = v
		s.order = append(s.order, p)
		restored = append(restored, strings.ReplaceAll(p, "/", ".")+"="+v)
	}
	s.mu.Unlock()
	if err := s.restore(); err != nil {
		return restored, err
	}
	return restored, s.remove()
}

// persist writes the saved values (under mu), replacing the file whole.
func (s *sysctls) persist() error {
	if s.file == "" {
		return nil
	}
	var b strings.Builder
	for _, p := range s.order {
		fmt.Fprintf(&b, "%s %s\n", p, s.saved[p])
	}
	tmp := s.file + ".tmp"
	if err := os.MkdirAll(filepath.Dir(s.file), 0o700); err != nil {
		return fmt.Errorf("record sysctls in %s: %w", s.file, err)
	}
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("record sysctls in %s: %w", s.file, err)
	}
	if err := os.Rename(tmp, s.file); err != nil {
		return fmt.Errorf("record sysctls in %s: %w", s.file, err)
	}
	return nil
}

func (s *sysctls) remove() error {
	if s.file == "" {
		return nil
	}
	if err := os.Remove(s.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", s.file, err)
	}
	return nil
}

// inNetNS runs fn on a locked OS thread that has joined the network
// namespace nsFD, and then returns the thread to its own namespace. A
// thread that cannot go back is never unlocked, so the runtime destroys
// it with the goroutine instead of reusing it in the wrong namespace.
func inNetNS(nsFD int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's netns: %w", err)
			return
		}
		defer unix.Close(own)
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns fd %d: %w", nsFD, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return from netns fd %d: %w", nsFD, err))
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
