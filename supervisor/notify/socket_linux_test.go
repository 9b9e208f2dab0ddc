package notify

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func listen(t *testing.T) (*Socket, chan Datagram) {
	t.Helper()
	s, err := Listen(t.TempDir() + "/n")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Datagram, 16)
	go s.Serve(func(d Datagram) { got <- d })
	t.Cleanup(func() { s.Close() })
	return s, got
}

func send(t *testing.T, path string, b []byte, oob []byte) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(fd, b, oob, &unix.SockaddrUnix{Name: path}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSocketAcceptsWithCredentials(t *testing.T) {
	s, got := listen(t)
	send(t, s.Path(), []byte("READY=1\nSTATUS=up"), nil)
	select {
	case d := <-got:
		if d.Pid != os.Getpid() || !d.Msg.Ready || d.Msg.Status != "up" {
			t.Errorf("got %+v, want pid %d READY with status up", d, os.Getpid())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received")
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket mode %v %v, want 0666 (a service may run as any user)", fi.Mode(), err)
	}
}

func TestSocketDropsBadDatagramsAndClosesFDs(t *testing.T) {
	s, got := listen(t)
	send(t, s.Path(), []byte(strings.Repeat("X", MaxDatagram+100)), nil) // truncated
	send(t, s.Path(), []byte("STATUS=\xff"), nil)                        // not UTF-8
	r, w, _ := os.Pipe()
	defer r.Close()
	send(t, s.Path(), []byte("READY=1"), unix.UnixRights(int(w.Fd())))
	w.Close()
	select {
	case d := <-got:
		if !d.Msg.Ready {
			t.Errorf("got %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the datagram with an fd was not accepted")
	}
	// The passed write end was closed by the receiver: with ours closed too,
	// the read end sees EOF.
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(make([]byte, 1)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("read = %d, %v: the passed fd is still open somewhere", n, err)
	}
	if s.Drops.Truncated.Load() != 1 || s.Drops.NotUTF8.Load() != 1 || s.Drops.PassedFDs.Load() != 1 {
		t.Errorf("drops truncated=%d utf8=%d fds=%d, want 1 1 1", s.Drops.Truncated.Load(), s.Drops.NotUTF8.Load(), s.Drops.PassedFDs.Load())
	}
	select {
	case d := <-got:
		t.Errorf("a bad datagram was delivered: %+v", d)
	default:
	}
}
