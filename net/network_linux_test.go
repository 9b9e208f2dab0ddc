package net

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var testCfg = BridgeConfig{Name: "corral0", Subnet: netip.MustParsePrefix("10.88.0.0/24")}

// Request descriptions shared by several tests.
const (
	getBridge   = "sup getlink name=corral0 ext_mask=0x8"
	addBridgeIP = "sup newaddr[create,excl,ack] index=7 10.88.0.1/24 local=10.88.0.1 brd=10.88.0.255"
	getHostIf   = "sup getlink name=crlweb ext_mask=0x8"
	vethCreate  = "sup newlink[create,excl,ack] up name=crlweb mtu=1400 kind=veth" +
		" peer{ name=eth0 mtu=1400 netns_fd=42 } master=7"
	loUp     = "svc newlink[ack] index=1 up"
	getEth0  = "svc getlink name=eth0 ext_mask=0x8"
	addEth0  = "svc newaddr[create,excl,ack] index=2 10.88.0.5/24 local=10.88.0.5 brd=10.88.0.255"
	eth0Up   = "svc newlink[ack] index=2 up"
	defRoute = "svc newroute[create,excl,ack] default via 10.88.0.1 oif=2 table=254 proto=3 scope=0 type=1"
	delHost  = "sup dellink[ack] name=crlweb"
)

func TestSetup(t *testing.T) {
	bridgeCreate := fmt.Sprintf("sup newlink[create,excl,ack] up name=corral0 address=%x kind=bridge",
		bridgeMAC("corral0"))
	tests := []struct {
		name    string
		reply   func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno)
		want    []string
		wantErr string
		wantIs  error
	}{{
		name: "creates a missing bridge",
		reply: func() func(string, netlink.Message) ([]netlink.Message, unix.Errno) {
			created := false
			return func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
				switch desc {
				case getBridge:
					if !created {
						return nil, unix.ENODEV
					}
					return linkReply(req, link(7, "corral0", "bridge", unix.IFF_UP, 1500)), 0
				case bridgeCreate:
					created = true
				}
				return nil, 0
			}
		}(),
		want: []string{getBridge, bridgeCreate, getBridge, addBridgeIP},
	}, {
		name: "reuses a bridge that is down and has its address",
		reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
			switch desc {
			case getBridge:
				return linkReply(req, link(7, "corral0", "bridge", 0, 1500)), 0
			case addBridgeIP:
				return nil, unix.EEXIST
			}
			return nil, 0
		},
		want: []string{getBridge, addBridgeIP, "sup newlink[ack] index=7 up"},
	}, {
		name: "refuses a link that is not a bridge",
		reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
			return linkReply(req, link(7, "corral0", "veth", unix.IFF_UP, 1500)), 0
		},
		want:    []string{getBridge},
		wantErr: `set up bridge corral0: link exists and is not a bridge (kind "veth")`,
		wantIs:  ErrNotBridge,
	}, {
		name: "not permitted",
		reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
			if desc == getBridge {
				return nil, unix.ENODEV
			}
			return nil, unix.EPERM
		},
		want:    []string{getBridge, bridgeCreate},
		wantErr: "create bridge corral0: operation not permitted",
		wantIs:  unix.EPERM,
	}, {
		name: "no bridge support",
		reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
			if desc == getBridge {
				return nil, unix.ENODEV
			}
			return nil, unix.EOPNOTSUPP
		},
		want:    []string{getBridge, bridgeCreate},
		wantErr: "create bridge corral0: operation not supported",
		wantIs:  errors.ErrUnsupported,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{reply: tt.reply}
			n, err := setup(k.conn("sup"), nil, testCfg)
			checkErr(t, err, tt.wantErr, tt.wantIs)
			if err == nil && (n.index != 7 || n.mtu != 1500) {
				t.Errorf("bridge index, mtu = %d, %d; want 7, 1500", n.index, n.mtu)
			}
			wantRequests(t, k, tt.want)
		})
	}
}

func TestSetupRejectsBadConfig(t *testing.T) {
	for _, cfg := range []BridgeConfig{
		{Name: "", Subnet: testCfg.Subnet},
		{Name: "a-name-that-is-too-long", Subnet: testCfg.Subnet},
		{Name: "corral0"},
		{Name: "corral0", Subnet: netip.MustParsePrefix("10.88.0.0/31")},
	} {
		if _, _, err := Setup(cfg, Options{}); err == nil {
			t.Errorf("Setup(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestBridgeMAC(t *testing.T) {
	mac := bridgeMAC("corral0")
	if len(mac) != 6 || mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
		t.Errorf("bridgeMAC = %x, want a locally administered unicast MAC", mac)
	}
	if fmt.Sprintf("%x", bridgeMAC("corral0")) != fmt.Sprintf("%x", mac) {
		t.Error("bridgeMAC not stable")
	}
	if fmt.Sprintf("%x", bridgeMAC("corral1")) == fmt.Sprintf("%x", mac) {
		t.Error("bridgeMAC same for two names")
	}
}

// attachKernel answers like a kernel where everything works, except that
// the request described by fail gets errno.
func attachKernel(fail string, errno unix.Errno, eth0Flags uint32) *fakeKernel {
	return &fakeKernel{reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
		if desc == fail {
			return nil, errno
		}
		switch desc {
		case getBridge:
			return linkReply(req, link(7, "corral0", "bridge", unix.IFF_UP, 1400)), 0
		case getEth0:
			return linkReply(req, link(2, "eth0", "veth", eth0Flags, 1400)), 0
		}
		return nil, 0
	}}
}

func testNetwork(k *fakeKernel, fds *[]int) *Network {
	return &Network{cfg: testCfg, dial: k.dialer(fds), index: 7, mtu: 1400, c: k.conn("sup")}
}

func TestAttach(t *testing.T) {
	tests := []struct {
		name      string
		kernel    *fakeKernel
		addr      string
		want      []string
		wantErr   string
		wantIs    error
		wantDials int
	}{{
		name:      "veth and peer in one request",
		kernel:    attachKernel("", 0, 0),
		want:      []string{vethCreate, loUp, getEth0, addEth0, eth0Up, defRoute},
		wantDials: 1,
	}, {
		name:      "peer found up: no second up",
		kernel:    attachKernel("", 0, unix.IFF_UP),
		want:      []string{vethCreate, loUp, getEth0, addEth0, defRoute},
		wantDials: 1,
	}, {
		name:    "route fails: host end deleted again",
		kernel:  attachKernel(defRoute, unix.EEXIST, 0),
		want:    []string{vethCreate, loUp, getEth0, addEth0, eth0Up, defRoute, delHost},
		wantErr: "add default route via 10.88.0.1 in netns of crlweb: file exists",
		wantIs:  unix.EEXIST, wantDials: 1,
	}, {
		name:    "address fails: host end deleted again",
		kernel:  attachKernel(addEth0, unix.EACCES, 0),
		want:    []string{vethCreate, loUp, getEth0, addEth0, delHost},
		wantErr: "add 10.88.0.5/24 to eth0 in netns of crlweb: permission denied",
		wantIs:  unix.EACCES, wantDials: 1,
	}, {
		name:    "veth create fails: nothing to undo",
		kernel:  attachKernel(vethCreate, unix.EPERM, unix.IFF_UP),
		want:    []string{vethCreate},
		wantErr: "create veth crlweb with peer eth0 in netns fd 42 on bridge corral0: operation not permitted",
		wantIs:  unix.EPERM,
	}, {
		name:    "address outside the subnet: no request at all",
		kernel:  attachKernel("", 0, unix.IFF_UP),
		addr:    "10.1.0.5",
		wantErr: "attach crlweb: bad address: 10.1.0.5 outside bridge subnet 10.88.0.0/24",
		wantIs:  ErrBadAddress,
	}, {
		name:    "the gateway's address",
		kernel:  attachKernel("", 0, unix.IFF_UP),
		addr:    "10.88.0.1",
		wantErr: "attach crlweb: bad address: 10.88.0.1 is the bridge's own",
		wantIs:  ErrBadAddress,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fds []int
			n := testNetwork(tt.kernel, &fds)
			addr := "10.88.0.5"
			if tt.addr != "" {
				addr = tt.addr
			}
			err := n.Attach(42, "crlweb", netip.MustParseAddr(addr))
			checkErr(t, err, tt.wantErr, tt.wantIs)
			wantRequests(t, tt.kernel, tt.want)
			if len(fds) != tt.wantDials || (len(fds) > 0 && fds[0] != 42) {
				t.Errorf("in-netns dials = %v, want %d dial(s) with fd 42", fds, tt.wantDials)
			}
		})
	}
}

func TestAttachStaleVeth(t *testing.T) {
	first := true
	k := &fakeKernel{reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
		switch desc {
		case getBridge:
			return linkReply(req, link(7, "corral0", "bridge", unix.IFF_UP, 1400)), 0
		case vethCreate:
			if first {
				first = false
				return nil, unix.EEXIST
			}
		case getHostIf:
			return linkReply(req, link(9, "crlweb", "veth", unix.IFF_UP, 1400)), 0
		case getEth0:
			return linkReply(req, link(2, "eth0", "veth", 0, 1400)), 0
		}
		return nil, 0
	}}
	var fds []int
	if err := testNetwork(k, &fds).Attach(42, "crlweb", netip.MustParseAddr("10.88.0.5")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	wantRequests(t, k, []string{
		vethCreate, getHostIf, "sup dellink[ack] index=9", vethCreate,
		loUp, getEth0, addEth0, eth0Up, defRoute,
	})
}

func TestAttachStaleNotVeth(t *testing.T) {
	k := &fakeKernel{reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
		switch desc {
		case getBridge:
			return linkReply(req, link(7, "corral0", "bridge", unix.IFF_UP, 1400)), 0
		case vethCreate:
			return nil, unix.EEXIST
		case getHostIf:
			return linkReply(req, link(9, "crlweb", "", unix.IFF_UP, 1500)), 0
		}
		return nil, 0
	}}
	var fds []int
	err := testNetwork(k, &fds).Attach(42, "crlweb", netip.MustParseAddr("10.88.0.5"))
	checkErr(t, err, `replace stale veth crlweb: link exists and is not a veth (kind ""): file exists`, unix.EEXIST)
	wantRequests(t, k, []string{vethCreate, getHostIf})
}

func TestAttachDialFails(t *testing.T) {
	k := attachKernel("", 0, unix.IFF_UP)
	n := testNetwork(k, nil)
	n.dial = func(int) (conn, error) { return nil, unix.EBADF }
	err := n.Attach(42, "crlweb", netip.MustParseAddr("10.88.0.5"))
	checkErr(t, err, "open netlink in netns of crlweb: bad file descriptor", unix.EBADF)
	wantRequests(t, k, []string{vethCreate, delHost})
}

func TestAttachFDZero(t *testing.T) {
	k := attachKernel("", 0, unix.IFF_UP)
	var fds []int
	n := testNetwork(k, &fds)
	if err := n.Attach(0, "crlweb", netip.MustParseAddr("10.88.0.5")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	// fd 0 means "this thread's netns" to netlink.Config.NetNS, so it must
	// have been duplicated to a higher number, the same in both places.
	if len(fds) != 1 || fds[0] < 3 {
		t.Fatalf("in-netns dial fds = %v, want one fd >= 3", fds)
	}
	got := k.requests()[0]
	if want := fmt.Sprintf("netns_fd=%d ", fds[0]); !strings.Contains(got, want) {
		t.Errorf("veth create %q does not contain %q", got, want)
	}
}

func TestAttachRejectsBadArguments(t *testing.T) {
	k := attachKernel("", 0, unix.IFF_UP)
	n := testNetwork(k, nil)
	if err := n.Attach(42, "crl/web", netip.MustParseAddr("10.88.0.5")); !errors.Is(err, ErrBadName) {
		t.Errorf("Attach with a bad name: %v, want ErrBadName", err)
	}
	if err := n.Attach(-1, "crlweb", netip.MustParseAddr("10.88.0.5")); !errors.Is(err, unix.EBADF) {
		t.Errorf("Attach with fd -1: %v, want EBADF", err)
	}
	for _, a := range []string{"10.88.0.0", "10.88.0.255", "fd00::5"} {
		if err := n.Attach(42, "crlweb", netip.MustParseAddr(a)); !errors.Is(err, ErrBadAddress) {
			t.Errorf("Attach %s: %v, want ErrBadAddress", a, err)
		}
	}
	wantRequests(t, k, nil)
}

func TestDetachAndRemove(t *testing.T) {
	k := &fakeKernel{reply: func(string, netlink.Message) ([]netlink.Message, unix.Errno) {
		return nil, unix.ENODEV
	}}
	n := testNetwork(k, nil)
	if err := n.Detach("crlweb"); err != nil {
		t.Errorf("Detach of a missing veth: %v, want nil", err)
	}
	if err := n.Remove(); err != nil {
		t.Errorf("Remove of a missing bridge: %v, want nil", err)
	}
	wantRequests(t, k, []string{delHost, "sup dellink[ack] index=7"})

	k.reply = func(string, netlink.Message) ([]netlink.Message, unix.Errno) { return nil, unix.EPERM }
	checkErr(t, n.Detach("crlweb"), "delete veth crlweb: operation not permitted", unix.EPERM)
	checkErr(t, n.Remove(), "delete bridge corral0: operation not permitted", unix.EPERM)
}

func TestClosed(t *testing.T) {
	k := attachKernel("", 0, unix.IFF_UP)
	n := testNetwork(k, nil)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := n.Attach(42, "crlweb", netip.MustParseAddr("10.88.0.5")); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
	if err := n.Detach("crlweb"); !errors.Is(err, ErrClosed) {
		t.Errorf("Detach after Close: %v, want ErrClosed", err)
	}
	wantRequests(t, k, nil)
}

func TestLoopbackUp(t *testing.T) {
	for _, tt := range []struct {
		nsFD    int
		wantFD  func(int) bool
		wantErr error
	}{
		{-1, func(fd int) bool { return fd == 0 }, nil},
		{5, func(fd int) bool { return fd == 5 }, nil},
		{0, func(fd int) bool { return fd >= 3 }, nil},
		{-2, nil, unix.EBADF},
	} {
		k := &fakeKernel{}
		var fds []int
		err := loopbackUp(k.dialer(&fds), tt.nsFD)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("LoopbackUp(%d) = %v, want %v", tt.nsFD, err, tt.wantErr)
		}
		if tt.wantErr != nil {
			continue
		}
		if len(fds) != 1 || !tt.wantFD(fds[0]) {
			t.Errorf("LoopbackUp(%d) dialed %v", tt.nsFD, fds)
		}
		wantRequests(t, k, []string{loUp})
	}
}

func TestLinkExists(t *testing.T) {
	for _, tt := range []struct {
		errno unix.Errno
		want  bool
		err   bool
	}{{0, true, false}, {unix.ENODEV, false, false}, {unix.EPERM, false, true}} {
		k := &fakeKernel{reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
			if tt.errno != 0 {
				return nil, tt.errno
			}
			return linkReply(req, link(3, "x", "veth", 0, 1500)), 0
		}}
		got, err := linkExists(func(fd int) (conn, error) { return k.conn("svc"), nil }, "x")
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("errno %v: LinkExists = %v, %v; want %v, error %v", tt.errno, got, err, tt.want, tt.err)
		}
	}
}

func TestKernelErrorKeepsExtack(t *testing.T) {
	err := kernelError(&netlink.OpError{Op: "receive", Err: unix.EINVAL, Message: "Invalid prefix length"})
	if got, want := err.Error(), "invalid argument (Invalid prefix length)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("errno lost: %v", err)
	}
	other := &netlink.OpError{Op: "receive", Err: errors.New("boom")}
	if kernelError(other) != error(other) {
		t.Errorf("non-errno error rewritten")
	}
}

func TestBroadcast(t *testing.T) {
	for p, want := range map[string]string{
		"10.88.0.0/24": "10.88.0.255", "10.88.0.77/20": "10.88.15.255", "192.168.1.0/30": "192.168.1.3",
	} {
		got, ok := broadcast(netip.MustParsePrefix(p))
		if !ok || got.String() != want {
			t.Errorf("broadcast(%s) = %v, %v; want %s", p, got, ok, want)
		}
	}
	if _, ok := broadcast(netip.MustParsePrefix("fd00::/64")); ok {
		t.Error("broadcast of an IPv6 prefix")
	}
}

func TestIPv6Requests(t *testing.T) {
	p := netip.MustParsePrefix("fd00:88::5/64")
	if got, want := describe(msg(newAddrReq(2, p))), "newaddr[create,excl,ack] index=2 fd00:88::5/64 local=fd00:88::5 nodad"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := describe(msg(defaultRouteReq(2, netip.MustParseAddr("fd00:88::1")))),
		"newroute[create,excl,ack] default via fd00:88::1 oif=2 table=254 proto=3 scope=0 type=1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func msg(r request) netlink.Message {
	b, err := r.msg.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return netlink.Message{Header: netlink.Header{Type: r.typ, Flags: r.flags}, Data: b}
}

func checkErr(t *testing.T, err error, wantMsg string, wantIs error) {
	t.Helper()
	switch {
	case wantMsg == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case wantMsg == "":
		return
	case err == nil:
		t.Fatalf("no error, want %q", wantMsg)
	}
	if err.Error() != wantMsg {
		t.Errorf("error:\ngot:  %s\nwant: %s", err, wantMsg)
	}
	if wantIs != nil && !errors.Is(err, wantIs) {
		t.Errorf("errors.Is(%v, %v) = false", err, wantIs)
	}
}
