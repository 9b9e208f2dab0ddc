package api

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer is who is on the other end of a connection, from the kernel
// (SO_PEERCRED, SO_PEERGROUPS): nothing the client says about itself.
type Peer struct {
	UID, GID int
	Groups   []int // supplementary groups
}

// InGroup reports whether the peer's primary or supplementary groups hold gid.
func (p Peer) InGroup(gid int) bool {
	if gid < 0 {
		return false
	}
	if p.GID == gid {
		return true
	}
	for _, g := range p.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

func peerOf(c net.Conn) Peer {
	p := Peer{UID: -1, GID: -1}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return p
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return p
	}
	_ = rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			p.UID, p.GID = int(cred.Uid), int(cred.Gid)
		}
		p.Groups = peerGroups(int(fd))
	})
	return p
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13+): an array of gid_t.
// x/sys's GetsockoptString stops at the first zero byte, so read it here.
func peerGroups(fd int) []int {
	buf := make([]byte, 4*64)
	for range 2 {
		n := uint32(len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if errno == unix.ERANGE {
			buf = make([]byte, n)
			continue
		}
		if errno != 0 {
			return nil
		}
		var out []int
		for i := 0; i+4 <= int(n); i += 4 {
			out = append(out, int(binary.NativeEndian.Uint32(buf[i:])))
		}
		return out
	}
	return nil
}
