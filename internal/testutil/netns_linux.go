package testutil

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// NetNS is a fresh network namespace made for a test. An open file
// descriptor keeps it alive; no thread or process stays in it. When the
// test ends, Cleanup closes the descriptor and, once nothing else refers to
// the namespace (sockets opened in it, a veth peer's other end does not
// count), the kernel destroys it with everything in it.
//
// Nothing in a NetNS touches the caller's own namespace: every change a
// test makes inside Do stays in the namespace.
type NetNS struct {
	fd    atomic.Int64 // -1 once closed
	ino   uint64
	once  sync.Once
	close error
}

// NewNetNS creates a network namespace on a locked OS thread that is never
// unlocked (the thread exits with its goroutine, so no goroutine ever runs
// on a thread with a changed namespace; see onDisposableThread) and keeps
// it open for the test.
// It skips the test when not root.
func NewNetNS(t testing.TB) *NetNS {
	t.Helper()
	RequireRoot(t)
	type result struct {
		fd  int
		err error
	}
	var r result
	onDisposableThread(func() {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			r.err = fmt.Errorf("unshare netns: %w", err)
			return
		}
		path := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		r.fd, r.err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if r.err != nil {
			r.err = &os.PathError{Op: "open", Path: path, Err: r.err}
		}
	})
	if r.err != nil {
		t.Fatalf("new netns: %v", r.err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		_ = unix.Close(r.fd)
		t.Fatalf("new netns: fstat: %v", err)
	}
	ns := &NetNS{ino: st.Ino}
	ns.fd.Store(int64(r.fd))
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("close netns: %v", err)
		}
	})
	return ns
}

// FD is the namespace's file descriptor, for IFLA_NET_NS_FD, setns(2) or
// netlink.Config.NetNS. It is valid until Close.
func (ns *NetNS) FD() int { return int(ns.fd.Load()) }

// Inode identifies the namespace (the inode of its nsfs file), as in
// readlink /proc/self/ns/net = "net:[Inode]".
func (ns *NetNS) Inode() uint64 { return ns.ino }

// Path names the namespace for tools: /proc/<pid>/fd/<fd>, which works
// with `nsenter --net=PATH` and `ip link ... netns PATH` without a bind
// mount (nothing to clean up in the host's mount table). Valid until Close.
func (ns *NetNS) Path() string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), ns.FD())
}

// Close drops the test's reference now, before the test ends (to watch the
// kernel tear the namespace down). It is idempotent; Cleanup calls it too.
func (ns *NetNS) Close() error {
	ns.once.Do(func() {
		ns.close = unix.Close(int(ns.fd.Swap(-1)))
	})
	return ns.close
}

// Do runs fn on a fresh OS thread that has entered the namespace, and
// returns fn's error. The thread is locked and never unlocked, so it dies
// afterwards and no other goroutine ever runs in the namespace by accident.
// Sockets fn opens (net.Listen, netlink) stay in the namespace after Do
// returns and may be used from any goroutine. A panic in fn is returned as
// an error. Do may be called from any goroutine, also concurrently.
func (ns *NetNS) Do(t testing.TB, fn func() error) error {
	t.Helper()
	fd := ns.FD()
	if fd < 0 {
		return errors.New("testutil: Do on a closed netns")
	}
	var err error
	onDisposableThread(func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic in netns: %v\n%s", p, debug.Stack())
			}
		}()
		if serr := unix.Setns(fd, unix.CLONE_NEWNET); serr != nil {
			err = fmt.Errorf("testutil: enter netns: %w", os.NewSyscallError("setns", serr))
			return
		}
		err = fn()
	})
	return err
}

// onDisposableThread runs fn on a goroutine locked to an OS thread that is
// never unlocked, so the runtime destroys the thread when fn returns, and
// waits for it.
//
// That thread must not be the process's main thread: the runtime cannot
// destroy that one, so a locked goroutine that exits there leaves it parked
// for the life of the process, still in whatever namespace fn moved it to,
// pinning that namespace and every veth in it. A goroutine that finds itself
// on the main thread keeps it (locked and blocked, so nothing else can be
// scheduled there) while a second goroutine, necessarily on another thread,
// runs fn; it then unlocks the untouched main thread.
func onDisposableThread(fn func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			onDisposableThread(fn)
			runtime.UnlockOSThread()
			close(done)
			return
		}
		// Never unlocked: see above.
		defer close(done)
		fn()
	}()
	<-done
}

// ThreadNetNSInode is the inode of the calling thread's network namespace,
// to compare with NetNS.Inode.
func ThreadNetNSInode() (uint64, error) {
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}
