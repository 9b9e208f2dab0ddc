//go:build integration && linux

package net_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/jsimonetti/rtnetlink/v2/driver"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/testutil"
	cnet "github.com/corral-init/corral/net"
)

// Test-only subnets, used only inside namespaces the tests create.
var (
	testBridge = cnet.BridgeConfig{Name: "crltestbr0", Subnet: netip.MustParsePrefix("10.99.0.0/24")}
	svcAddr    = netip.MustParseAddr("10.99.0.5")
	// outside is an address of the supervisor's namespace outside the
	// bridge subnet: a service reaches it only through its default route.
	outside = netip.MustParsePrefix("10.98.0.1/32")
)

// supervisor is a fresh namespace standing in for the supervisor's, with lo
// up and the test bridge set up in it.
type supervisor struct {
	ns *testutil.NetNS
	n  *cnet.Network
}

func newSupervisor(t testing.TB) *supervisor {
	t.Helper()
	ns := testutil.NewNetNS(t)
	if err := cnet.LoopbackUp(ns.FD()); err != nil {
		t.Fatalf("LoopbackUp: %v", err)
	}
	return &supervisor{ns: ns, n: setupIn(t, ns, testBridge)}
}

// setupIn runs Setup inside ns, so the Network's socket lives there.
func setupIn(t testing.TB, ns *testutil.NetNS, cfg cnet.BridgeConfig) *cnet.Network {
	t.Helper()
	var n *cnet.Network
	err := ns.Do(t, func() error {
		var err error
		n, _, err = cnet.Setup(cfg, cnet.Options{})
		return err
	})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// rtnl runs fn with an rtnetlink conn opened inside ns.
func rtnl(t testing.TB, ns *testutil.NetNS, fn func(c *rtnetlink.Conn) error) error {
	t.Helper()
	return ns.Do(t, func() error {
		c, err := rtnetlink.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		return fn(c)
	})
}

func findLink(c *rtnetlink.Conn, name string) (rtnetlink.LinkMessage, bool, error) {
	links, err := c.Link.List()
	if err != nil {
		return rtnetlink.LinkMessage{}, false, err
	}
	for _, l := range links {
		if l.Attributes != nil && l.Attributes.Name == name {
			return l, true, nil
		}
	}
	return rtnetlink.LinkMessage{}, false, nil
}

func mustLink(t testing.TB, ns *testutil.NetNS, name string) rtnetlink.LinkMessage {
	t.Helper()
	var lm rtnetlink.LinkMessage
	err := rtnl(t, ns, func(c *rtnetlink.Conn) error {
		var ok bool
		var err error
		lm, ok, err = findLink(c, name)
		if err == nil && !ok {
			err = fmt.Errorf("no link %s", name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return lm
}

func linkExists(t testing.TB, ns *testutil.NetNS, name string) bool {
	t.Helper()
	var ok bool
	if err := ns.Do(t, func() error {
		var err error
		ok, err = cnet.LinkExists(name)
		return err
	}); err != nil {
		t.Fatalf("LinkExists(%s): %v", name, err)
	}
	return ok
}

// waitGone polls until name is gone from ns, failing after a generous
// deadline; it returns how long that took (for the log, not asserted).
func waitGone(t testing.TB, ns *testutil.NetNS, name string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for linkExists(t, ns, name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists %v after its netns was dropped", name, time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func addrsOf(c *rtnetlink.Conn, index uint32) ([]netip.Prefix, error) {
	all, err := c.Address.List()
	if err != nil {
		return nil, err
	}
	var ps []netip.Prefix
	for _, a := range all {
		if a.Index != index || a.Family != unix.AF_INET {
			continue
		}
		ip, _ := netip.AddrFromSlice(a.Attributes.Address)
		ps = append(ps, netip.PrefixFrom(ip.Unmap(), int(a.PrefixLength)))
	}
	return ps, nil
}

func TestSetupIsIdempotent(t *testing.T) {
	sup := newSupervisor(t)
	before := mustLink(t, sup.ns, testBridge.Name)

	again := setupIn(t, sup.ns, testBridge)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}

	err := rtnl(t, sup.ns, func(c *rtnetlink.Conn) error {
		links, err := c.Link.List()
		if err != nil {
			return err
		}
		var bridges []string
		for _, l := range links {
			if l.Attributes.Info != nil && l.Attributes.Info.Kind == "bridge" {
				bridges = append(bridges, l.Attributes.Name)
			}
		}
		if len(bridges) != 1 || bridges[0] != testBridge.Name {
			return fmt.Errorf("bridges = %v, want [%s]", bridges, testBridge.Name)
		}
		br, _, err := findLink(c, testBridge.Name)
		if err != nil {
			return err
		}
		if br.Index != before.Index {
			return fmt.Errorf("bridge index changed %d -> %d", before.Index, br.Index)
		}
		if br.Flags&unix.IFF_UP == 0 {
			return errors.New("bridge is not up")
		}
		addrs, err := addrsOf(c, br.Index)
		if err != nil {
			return err
		}
		if want := netip.MustParsePrefix("10.99.0.1/24"); len(addrs) != 1 || addrs[0] != want {
			return fmt.Errorf("bridge addresses = %v, want [%s]", addrs, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSetupRefusesNonBridge(t *testing.T) {
	ns := testutil.NewNetNS(t)
	err := rtnl(t, ns, func(c *rtnetlink.Conn) error {
		return c.Link.New(&rtnetlink.LinkMessage{
			Family: unix.AF_UNSPEC,
			Attributes: &rtnetlink.LinkAttributes{
				Name: "crltestv0",
				Info: &rtnetlink.LinkInfo{Kind: "veth", Data: &driver.Veth{PeerInfo: &rtnetlink.LinkMessage{
					Family: unix.AF_UNSPEC, Attributes: &rtnetlink.LinkAttributes{Name: "crltestv1"},
				}}},
			},
		})
	})
	if err != nil {
		t.Fatalf("create veth: %v", err)
	}
	err = ns.Do(t, func() error {
		n, _, err := cnet.Setup(cnet.BridgeConfig{Name: "crltestv0", Subnet: testBridge.Subnet}, cnet.Options{})
		if err == nil {
			_ = n.Close()
		}
		return err
	})
	if !errors.Is(err, cnet.ErrNotBridge) {
		t.Fatalf("Setup on a veth: %v, want ErrNotBridge", err)
	}
	t.Logf("Setup on a veth: %v", err)
}

func TestAttach(t *testing.T) {
	sup := newSupervisor(t)
	bridgeBefore := mustLink(t, sup.ns, testBridge.Name)
	svc := testutil.NewNetNS(t)
	hostIf := cnet.HostIfName("web")

	if err := sup.n.Attach(svc.FD(), hostIf, svcAddr); err != nil {
		t.Fatalf("Attach: %v", err)
	}

	t.Run("service side", func(t *testing.T) {
		err := rtnl(t, svc, func(c *rtnetlink.Conn) error {
			lo, ok, err := findLink(c, "lo")
			if err != nil || !ok {
				return fmt.Errorf("lo: %v %v", ok, err)
			}
			if lo.Flags&unix.IFF_UP == 0 {
				return errors.New("lo is not up")
			}
			eth0, ok, err := findLink(c, "eth0")
			if err != nil || !ok {
				return fmt.Errorf("eth0: %v %v", ok, err)
			}
			if eth0.Flags&unix.IFF_UP == 0 {
				return errors.New("eth0 is not up")
			}
			if eth0.Attributes.MTU != bridgeBefore.Attributes.MTU {
				return fmt.Errorf("eth0 mtu %d, bridge mtu %d", eth0.Attributes.MTU, bridgeBefore.Attributes.MTU)
			}
			addrs, err := addrsOf(c, eth0.Index)
			if err != nil {
				return err
			}
			if want := netip.PrefixFrom(svcAddr, 24); len(addrs) != 1 || addrs[0] != want {
				return fmt.Errorf("eth0 addresses = %v, want [%s]", addrs, want)
			}
			routes, err := c.Route.List()
			if err != nil {
				return err
			}
			var found bool
			for _, r := range routes {
				if r.Family != unix.AF_INET || r.DstLength != 0 || r.Table != unix.RT_TABLE_MAIN {
					continue
				}
				gw, _ := netip.AddrFromSlice(r.Attributes.Gateway)
				if gw.Unmap() != testBridge.Gateway() || r.Attributes.OutIface != eth0.Index {
					return fmt.Errorf("default route via %s dev %d, want via %s dev %d",
						gw, r.Attributes.OutIface, testBridge.Gateway(), eth0.Index)
				}
				found = true
			}
			if !found {
				return errors.New("no default route")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("supervisor side", func(t *testing.T) {
		host := mustLink(t, sup.ns, hostIf)
		if host.Attributes.Master == nil || *host.Attributes.Master != bridgeBefore.Index {
			t.Errorf("%s master = %v, want bridge index %d", hostIf, host.Attributes.Master, bridgeBefore.Index)
		}
		if host.Flags&unix.IFF_UP == 0 {
			t.Errorf("%s is not up", hostIf)
		}
		after := mustLink(t, sup.ns, testBridge.Name)
		if !bytes.Equal(after.Attributes.Address, bridgeBefore.Attributes.Address) {
			t.Errorf("bridge MAC changed from %s to %s when a port joined",
				bridgeBefore.Attributes.Address, after.Attributes.Address)
		}
		// The service's eth0 is not in the supervisor's namespace.
		if linkExists(t, sup.ns, "eth0") {
			t.Error("eth0 exists in the supervisor's netns")
		}
	})

	t.Run("supervisor to service", func(t *testing.T) {
		l := listen(t, svc, netip.AddrPortFrom(svcAddr, 0))
		exchange(t, sup.ns, l)
	})

	t.Run("service to supervisor via default route", func(t *testing.T) {
		err := rtnl(t, sup.ns, func(c *rtnetlink.Conn) error {
			return c.Address.New(&rtnetlink.AddressMessage{
				Family: unix.AF_INET, PrefixLength: 32, Index: 1,
				Attributes: &rtnetlink.AddressAttributes{Address: outside.Addr().AsSlice(), Local: outside.Addr().AsSlice()},
			})
		})
		if err != nil {
			t.Fatalf("add %s to lo of the supervisor netns: %v", outside, err)
		}
		l := listen(t, sup.ns, netip.AddrPortFrom(outside.Addr(), 0))
		exchange(t, svc, l)
	})
}

// listen opens a TCP listener on ap inside ns.
func listen(t testing.TB, ns *testutil.NetNS, ap netip.AddrPort) stdnet.Listener {
	t.Helper()
	var l stdnet.Listener
	if err := ns.Do(t, func() error {
		var err error
		l, err = stdnet.Listen("tcp4", ap.String())
		return err
	}); err != nil {
		t.Fatalf("listen on %s: %v", ap, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// exchange connects from ns to l, sends a message, reads the echo: real
// frames crossing veth and bridge in both directions.
func exchange(t testing.TB, from *testutil.NetNS, l stdnet.Listener) {
	t.Helper()
	msg := []byte("hello across the bridge")
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			done <- err
			return
		}
		_, err = c.Write(buf)
		done <- err
	}()
	err := from.Do(t, func() error {
		d := stdnet.Dialer{Timeout: 10 * time.Second}
		c, err := d.Dial("tcp4", l.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial %s: %v", l.Addr(), err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server side: %v", err)
	}
}

func TestAttachReplacesStaleVeth(t *testing.T) {
	sup := newSupervisor(t)
	hostIf := cnet.HostIfName("web")

	// A veth whose namespace is still alive: the deterministic case.
	old := testutil.NewNetNS(t)
	if err := sup.n.Attach(old.FD(), hostIf, svcAddr); err != nil {
		t.Fatalf("first Attach: %v", err)
	}
	svc := testutil.NewNetNS(t)
	if err := sup.n.Attach(svc.FD(), hostIf, svcAddr); err != nil {
		t.Fatalf("Attach over a stale %s: %v", hostIf, err)
	}
	mustLink(t, svc, "eth0")
	err := rtnl(t, old, func(c *rtnetlink.Conn) error {
		if _, ok, err := findLink(c, "eth0"); err != nil || ok {
			return fmt.Errorf("old namespace still has eth0 (%v, %v)", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	l := listen(t, svc, netip.AddrPortFrom(svcAddr, 0))
	exchange(t, sup.ns, l)

	// The real case: the old service just died and the kernel may still be
	// tearing its namespace down when the restart attaches again.
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		next := testutil.NewNetNS(t)
		lingering := linkExists(t, sup.ns, hostIf)
		start := time.Now()
		if err := sup.n.Attach(next.FD(), hostIf, svcAddr); err != nil {
			t.Fatalf("Attach right after dropping the old netns (round %d): %v", i, err)
		}
		t.Logf("round %d: old %s still present: %v; Attach took %v", i, hostIf, lingering, time.Since(start))
		if err := next.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFailedAttachLeavesNothing(t *testing.T) {
	sup := newSupervisor(t)
	hostIf := cnet.HostIfName("broken")

	t.Run("fd is not a netns", func(t *testing.T) {
		f, err := os.Open("/dev/null")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		err = sup.n.Attach(int(f.Fd()), hostIf, svcAddr)
		if err == nil {
			t.Fatal("Attach with /dev/null as netns succeeded")
		}
		t.Logf("error: %v", err)
		if linkExists(t, sup.ns, hostIf) {
			t.Errorf("%s left behind", hostIf)
		}
	})

	t.Run("closed fd", func(t *testing.T) {
		err := sup.n.Attach(1<<20-1, hostIf, svcAddr)
		if !errors.Is(err, unix.EBADF) {
			t.Fatalf("Attach with a closed fd: %v, want EBADF", err)
		}
		t.Logf("error: %v", err)
		if linkExists(t, sup.ns, hostIf) {
			t.Errorf("%s left behind", hostIf)
		}
	})

	t.Run("address outside the subnet", func(t *testing.T) {
		svc := testutil.NewNetNS(t)
		err := sup.n.Attach(svc.FD(), hostIf, netip.MustParseAddr("10.1.2.3"))
		if !errors.Is(err, cnet.ErrBadAddress) {
			t.Fatalf("Attach: %v, want ErrBadAddress", err)
		}
		if linkExists(t, sup.ns, hostIf) {
			t.Errorf("%s left behind", hostIf)
		}
	})

	t.Run("failure after the veth exists", func(t *testing.T) {
		// The service namespace already has a default route, so adding
		// ours fails after the pair, the address and lo are in place.
		svc := testutil.NewNetNS(t)
		if err := cnet.LoopbackUp(svc.FD()); err != nil {
			t.Fatal(err)
		}
		err := rtnl(t, svc, func(c *rtnetlink.Conn) error {
			return c.Route.Add(&rtnetlink.RouteMessage{
				Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
				Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST,
				Attributes: rtnetlink.RouteAttributes{OutIface: 1},
			})
		})
		if err != nil {
			t.Fatalf("add default route dev lo: %v", err)
		}
		err = sup.n.Attach(svc.FD(), hostIf, svcAddr)
		if !errors.Is(err, unix.EEXIST) {
			t.Fatalf("Attach: %v, want EEXIST from the route", err)
		}
		t.Logf("error: %v", err)
		if linkExists(t, sup.ns, hostIf) {
			t.Errorf("%s left behind", hostIf)
		}
		if linkExists(t, svc, "eth0") {
			t.Error("eth0 left behind in the service netns")
		}
	})
}

func TestNetnsDeathRemovesVeth(t *testing.T) {
	sup := newSupervisor(t)
	svc := testutil.NewNetNS(t)
	hostIf := cnet.HostIfName("web")
	if err := sup.n.Attach(svc.FD(), hostIf, svcAddr); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if !linkExists(t, sup.ns, hostIf) {
		t.Fatalf("%s missing after Attach", hostIf)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	took := waitGone(t, sup.ns, hostIf)
	t.Logf("%s disappeared %v after the last reference to its netns was dropped", hostIf, took)
}

func TestAttachConcurrently(t *testing.T) {
	sup := newSupervisor(t)
	const services = 8
	nss := make([]*testutil.NetNS, services)
	for i := range nss {
		nss[i] = testutil.NewNetNS(t)
	}
	var wg sync.WaitGroup
	errs := make([]error, services)
	for i := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := netip.AddrFrom4([4]byte{10, 99, 0, byte(10 + i)})
			errs[i] = sup.n.Attach(nss[i].FD(), cnet.HostIfName(fmt.Sprintf("svc%d", i)), addr)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Attach svc%d: %v", i, err)
		}
	}
	for i := range services {
		if !linkExists(t, sup.ns, cnet.HostIfName(fmt.Sprintf("svc%d", i))) {
			t.Errorf("svc%d: host end missing", i)
		}
	}
	// Services reach each other across the bridge.
	l := listen(t, nss[3], netip.AddrPortFrom(netip.MustParseAddr("10.99.0.13"), 0))
	exchange(t, nss[5], l)
}

func TestDetach(t *testing.T) {
	sup := newSupervisor(t)
	svc := testutil.NewNetNS(t)
	hostIf := cnet.HostIfName("web")
	if err := sup.n.Attach(svc.FD(), hostIf, svcAddr); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := sup.n.Detach(hostIf); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if linkExists(t, sup.ns, hostIf) {
		t.Errorf("%s still exists after Detach", hostIf)
	}
	if linkExists(t, svc, "eth0") {
		t.Error("peer eth0 still exists after Detach")
	}
	if err := sup.n.Detach(hostIf); err != nil {
		t.Errorf("second Detach: %v, want nil", err)
	}
}

func TestLoopbackUp(t *testing.T) {
	loUp := func(t *testing.T, ns *testutil.NetNS) bool {
		t.Helper()
		var up bool
		if err := ns.Do(t, func() error {
			lo, err := stdnet.InterfaceByName("lo")
			if err != nil {
				return err
			}
			up = lo.Flags&stdnet.FlagUp != 0
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return up
	}
	t.Run("by fd", func(t *testing.T) {
		ns := testutil.NewNetNS(t)
		if loUp(t, ns) {
			t.Fatal("lo up in a fresh netns")
		}
		if err := cnet.LoopbackUp(ns.FD()); err != nil {
			t.Fatal(err)
		}
		if !loUp(t, ns) {
			t.Error("lo still down")
		}
	})
	t.Run("own netns", func(t *testing.T) {
		ns := testutil.NewNetNS(t)
		if err := ns.Do(t, func() error { return cnet.LoopbackUp(-1) }); err != nil {
			t.Fatal(err)
		}
		if !loUp(t, ns) {
			t.Error("lo still down")
		}
	})
}

func TestRemove(t *testing.T) {
	sup := newSupervisor(t)
	svc := testutil.NewNetNS(t)
	if err := sup.n.Attach(svc.FD(), cnet.HostIfName("web"), svcAddr); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if err := sup.n.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if linkExists(t, sup.ns, testBridge.Name) {
		t.Error("bridge still exists after Remove")
	}
	// The port survives, released from the bridge.
	host := mustLink(t, sup.ns, cnet.HostIfName("web"))
	if host.Attributes.Master != nil && *host.Attributes.Master != 0 {
		t.Errorf("veth still has master %d", *host.Attributes.Master)
	}
	if err := sup.n.Remove(); err != nil {
		t.Errorf("second Remove: %v, want nil", err)
	}
	if err := sup.n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sup.n.Attach(svc.FD(), "crlx", svcAddr); !errors.Is(err, cnet.ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
}
