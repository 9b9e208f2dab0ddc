package testutil

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNewNetNSIsFresh(t *testing.T) {
	ns := NewNetNS(t)
	own, err := ThreadNetNSInode()
	if err != nil {
		t.Fatal(err)
	}
	if ns.Inode() == own {
		t.Fatalf("NewNetNS returned the caller's own namespace (inode %d)", own)
	}
	var inside uint64
	if err := ns.Do(t, func() error {
		var err error
		inside, err = ThreadNetNSInode()
		if err != nil {
			return err
		}
		// Only lo, and down: nothing of the host's is visible.
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		if len(ifs) != 1 || ifs[0].Name != "lo" || ifs[0].Flags&net.FlagUp != 0 {
			return errors.New("fresh netns is not just a down lo: " + ifsString(ifs))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside != ns.Inode() {
		t.Errorf("inside Do: netns inode %d, want %d", inside, ns.Inode())
	}
	// The test goroutine's thread never moved.
	if after, _ := ThreadNetNSInode(); after != own {
		t.Errorf("caller's netns changed from %d to %d", own, after)
	}
}

func TestDoKeepsSocketsInTheNamespace(t *testing.T) {
	ns := NewNetNS(t)
	var l net.Listener
	if err := ns.Do(t, func() error {
		if err := ioctlLoopbackUp(); err != nil {
			return err
		}
		var err error
		l, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// A later Do, on another thread, reaches the listener: it lives in ns,
	// not on the thread that made it.
	errc := make(chan error, 1)
	go func() {
		errc <- ns.Do(t, func() error {
			c, err := net.Dial("tcp4", l.Addr().String())
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("hello"))
			return err
		})
	}()
	c, err := l.Accept() // from the test goroutine, outside ns
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Errorf("read %q, %v; want hello", buf, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// ioctlLoopbackUp sets lo up in the calling thread's netns without netlink.
func ioctlLoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func TestDoConcurrentAndErrors(t *testing.T) {
	ns := NewNetNS(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := ns.Do(t, func() error {
				ino, err := ThreadNetNSInode()
				if err == nil && ino != ns.Inode() {
					err = errors.New("wrong netns")
				}
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	boom := errors.New("boom")
	if err := ns.Do(t, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := ns.Do(t, func() error { panic("oops") }); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Errorf("Do after panic returned %v", err)
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := ns.Do(t, func() error { return nil }); err == nil {
		t.Error("Do on a closed netns succeeded")
	}
}

func TestPathWorksWithNsenter(t *testing.T) {
	ns := NewNetNS(t)
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("nsenter not installed")
	}
	out, err := exec.Command(nsenter, "--net="+ns.Path(), "readlink", "/proc/self/ns/net").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	want := "net:[" + strconv.FormatUint(ns.Inode(), 10) + "]"
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("nsenter --net=%s: in %s, want %s", ns.Path(), got, want)
	}
	if _, err := os.Stat(ns.Path()); err != nil {
		t.Errorf("Path: %v", err)
	}
}

func ifsString(ifs []net.Interface) string {
	var s []string
	for _, i := range ifs {
		s = append(s, i.Name+"("+i.Flags.String()+")")
	}
	return strings.Join(s, ", ")
}

// A goroutine that exits locked is destroyed with its thread, except on the
// main thread, which the runtime parks forever instead: left in a test
// namespace, it would keep that namespace (and its veths) alive until the
// process exits. Idle test binaries schedule new goroutines on the main
// thread all the time, so this fails within a few iterations without the
// guard.
func TestMainThreadNeverEntersNamespace(t *testing.T) {
	RequireRoot(t)
	mainNS := func() string {
		s, err := os.Readlink("/proc/self/task/" + strconv.Itoa(os.Getpid()) + "/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	orig := mainNS()
	for i := range 300 {
		ns := NewNetNS(t)
		if err := ns.Do(t, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if got := mainNS(); got != orig {
			t.Fatalf("iteration %d: main thread moved to %s (was %s)", i, got, orig)
		}
		if err := ns.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNoThreadStaysInNamespace(t *testing.T) {
	ns := NewNetNS(t)
	for range 20 {
		if err := ns.Do(t, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	want := "net:[" + strconv.FormatUint(ns.Inode(), 10) + "]"
	// Threads exit just after their goroutine; allow them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		var inside []string
		for _, task := range tasks {
			if s, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && s == want {
				inside = append(inside, task.Name())
			}
		}
		if len(inside) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v still in the test netns", inside)
		}
		time.Sleep(time.Millisecond)
	}
}
