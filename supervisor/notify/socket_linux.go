package notify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// SocketName is the socket's file name inside its directory.
const SocketName = "notify.sock"

// MaxDatagram is the largest datagram accepted, as systemd's
// NOTIFY_BUFFER_MAX; a longer one is truncated by the kernel and dropped.
const MaxDatagram = 4096

// Datagram is one accepted datagram with its sender's credentials (pid in
// the supervisor's pid namespace).
type Datagram struct {
	Msg Message
	Pid int
	UID uint32
	GID uint32
	// FDs are the file descriptors passed with a BARRIER=1 datagram; the
	// receiver must close them once every earlier datagram is processed.
	// Any other datagram's fds are closed on arrival.
	FDs []int
}

// Drops counts datagrams that were not accepted, by reason.
type Drops struct {
	Truncated, Empty, NotUTF8, NoCredentials, PassedFDs atomic.Uint64
}

// Socket is one service's notify socket.
type Socket struct {
	Dir   string
	conn  *net.UnixConn
	Drops Drops
	// Rate caps the datagrams read per second (0 = no cap). Past it the
	// reader sleeps, the socket buffer fills and the sender blocks: a
	// flooding service costs corral a bounded amount of CPU and memory.
	Rate int
}

// DefaultRate is the datagram rate a service's socket is read at, at most.
const DefaultRate = 2000

// Listen creates dir and binds the socket in it. The socket is
// world-writable (a service may run as any user) but its directory on the
// host is reachable only through corral's 0700 state directory; inside the
// container it is bound read-only at /run/notify.
func Listen(dir string) (*Socket, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create notify directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, SocketName)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale notify socket %s: %w", path, err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("bind notify socket %s: %w", path, err)
	}
	s := &Socket{Dir: dir, conn: conn, Rate: DefaultRate}
	rc, err := conn.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		if err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Chmod(path, 0o666)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("set up notify socket %s: %w", path, err)
	}
	return s, nil
}

// Path is the socket's path on the host.
func (s *Socket) Path() string { return filepath.Join(s.Dir, SocketName) }

// Close closes and unlinks the socket; Serve returns.
func (s *Socket) Close() error {
	err := s.conn.Close()
	if rerr := os.Remove(s.Path()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

// Serve reads datagrams until the socket is closed and hands each accepted
// one to handle, in order, on this goroutine.
func (s *Socket) Serve(handle func(Datagram)) {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return
	}
	// One byte more than the limit is not needed: the kernel reports
	// truncation with MSG_TRUNC.
	buf := make([]byte, MaxDatagram)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*64))
	var windowStart time.Time
	inWindow := 0
	for {
		if s.Rate > 0 {
			// A one-second window: simple, and no timer while idle.
			if now := time.Now(); now.Sub(windowStart) >= time.Second {
				windowStart, inWindow = now, 0
			} else if inWindow >= s.Rate {
				time.Sleep(time.Second - now.Sub(windowStart))
				windowStart, inWindow = time.Now(), 0
			}
			inWindow++
		}
		var n, oobn, flags int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err != nil {
			return // closed
		}
		if errors.Is(rerr, unix.EINTR) {
			continue
		}
		if rerr != nil {
			if errors.Is(rerr, net.ErrClosed) {
				return
			}
			continue
		}
		if d, ok := s.accept(buf[:n], oob[:oobn], flags); ok {
			handle(d)
		}
	}
}

func (s *Socket) accept(b, oob []byte, flags int) (Datagram, bool) {
	var d Datagram
	haveCred := false
	var fds []int
	cmsgs, _ := unix.ParseSocketControlMessage(oob)
	for _, c := range cmsgs {
		if c.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch c.Header.Type {
		case unix.SCM_CREDENTIALS:
			if cred, err := unix.ParseUnixCredentials(&c); err == nil {
				d.Pid, d.UID, d.GID, haveCred = int(cred.Pid), cred.Uid, cred.Gid, true
			}
		case unix.SCM_RIGHTS:
			if got, err := unix.ParseUnixRights(&c); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	switch {
	case flags&unix.MSG_TRUNC != 0:
		s.Drops.Truncated.Add(1)
		closeAll()
		return d, false
	case !haveCred || d.Pid <= 0:
		s.Drops.NoCredentials.Add(1)
		closeAll()
		return d, false
	}
	m, err := Parse(b)
	switch {
	case errors.Is(err, ErrEmpty):
		s.Drops.Empty.Add(1)
		closeAll()
		return d, false
	case err != nil:
		s.Drops.NotUTF8.Add(1)
		closeAll()
		return d, false
	}
	d.Msg = m
	if m.Barrier && len(fds) > 0 {
		d.FDs = fds // the receiver closes them, in order
	} else if len(fds) > 0 {
		// Never keep a passed fd.
		s.Drops.PassedFDs.Add(1)
		closeAll()
	}
	return d, true
}
