//go:build integration && linux

package net_test

import (
	"errors"
	"fmt"
	"io"
	stdnet "net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/corral-init/corral/internal/testutil"
	cnet "github.com/corral-init/corral/net"
)

// These tests run the firewall for real: a namespace plays the
// supervisor's, another the outside world behind its uplink, and one per
// service sits on the bridge. Every address is inside namespaces the test
// made.

var (
	upAddr  = netip.MustParsePrefix("10.200.0.1/24") // the supervisor's uplink
	outAddr = netip.MustParsePrefix("10.200.0.2/24") // a machine outside
)

// ipIn runs ip(8) inside ns.
func ipIn(t testing.TB, ns *testutil.NetNS, args ...string) {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns.Path(), "ip"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newOutside gives sup an uplink "up0" to a fresh namespace, the outside,
// with a default route through it. The outside routes the bridge subnet
// back through the uplink, as a router of a LAN could: without the
// firewall, it could reach services directly.
func newOutside(t testing.TB, sup *testutil.NetNS) *testutil.NetNS {
	t.Helper()
	out := testutil.NewNetNS(t)
	testutil.Veth(t, sup, "up0", out, "eth0")
	ipIn(t, sup, "addr", "add", upAddr.String(), "dev", "up0")
	ipIn(t, sup, "link", "set", "up0", "up")
	ipIn(t, out, "addr", "add", outAddr.String(), "dev", "eth0")
	ipIn(t, out, "link", "set", "eth0", "up")
	ipIn(t, out, "link", "set", "lo", "up")
	ipIn(t, sup, "route", "add", "default", "via", outAddr.Addr().String())
	ipIn(t, out, "route", "add", testBridge.Subnet.String(), "via", upAddr.Addr().String())
	return out
}

// setupWith runs Setup with o inside ns.
func setupWith(t testing.TB, ns *testutil.NetNS, o cnet.Options) (*cnet.Network, cnet.SetupReport) {
	t.Helper()
	var n *cnet.Network
	var rep cnet.SetupReport
	if err := ns.Do(t, func() error {
		var err error
		n, rep, err = cnet.Setup(testBridge, o)
		return err
	}); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, rep
}

func sysctl(t testing.TB, ns *testutil.NetNS, path string) string {
	t.Helper()
	var v string
	if err := ns.Do(t, func() error {
		b, err := os.ReadFile("/proc/sys/" + path)
		v = strings.TrimSpace(string(b))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func forwarding(t testing.TB, ns *testutil.NetNS) map[string]string {
	return map[string]string{
		"all":     sysctl(t, ns, "net/ipv4/conf/all/forwarding"),
		"bridge":  sysctl(t, ns, "net/ipv4/conf/"+testBridge.Name+"/forwarding"),
		"uplink":  sysctl(t, ns, "net/ipv4/conf/up0/forwarding"),
		"default": sysctl(t, ns, "net/ipv4/conf/default/forwarding"),
	}
}

// tables lists corral's nftables tables in ns as "family name".
func tables(t testing.TB, ns *testutil.NetNS) []string {
	t.Helper()
	var out []string
	if err := ns.Do(t, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		ts, err := c.ListTables()
		for _, tb := range ts {
			fam := map[nftables.TableFamily]string{nftables.TableFamilyIPv4: "ip", nftables.TableFamilyBridge: "bridge"}[tb.Family]
			out = append(out, fam+" "+tb.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// ruleCount counts the rules of corral's tables in ns.
func ruleCount(t testing.TB, ns *testutil.NetNS) int {
	t.Helper()
	n := 0
	if err := ns.Do(t, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		chains, err := c.ListChains()
		if err != nil {
			return err
		}
		for _, ch := range chains {
			if ch.Table.Name != cnet.TableName {
				continue
			}
			rs, err := c.GetRules(ch.Table, ch)
			if err != nil {
				return err
			}
			n += len(rs)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// guardSet lists the guard set's elements.
func guardSet(t testing.TB, ns *testutil.NetNS) []string {
	t.Helper()
	var out []string
	if err := ns.Do(t, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		s, err := c.GetSetByName(&nftables.Table{Name: cnet.TableName, Family: nftables.TableFamilyIPv4}, "guard")
		if err != nil {
			return err
		}
		els, err := c.GetSetElements(s)
		for _, e := range els {
			out = append(out, strings.TrimRight(string(e.Key), "\x00"))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFirewallReplacedWhole(t *testing.T) {
	sup := testutil.NewNetNS(t)
	fw := &cnet.Firewall{Endpoints: []cnet.Endpoint{
		{Name: "web", Addr: svcAddr, Ports: []cnet.Port{{Host: 8080, Container: 80, Proto: cnet.TCP}}},
		{Name: "app", Addr: netip.MustParseAddr("10.99.0.6"), Peers: []string{"web"}},
	}}
	n, _ := setupWith(t, sup, cnet.Options{Firewall: fw})
	want := []string{"bridge corral", "ip corral"}
	if got := tables(t, sup); !slices.Equal(got, want) {
		t.Fatalf("tables = %v, want %v", got, want)
	}
	rules := ruleCount(t, sup)
	// A second Setup (a restart after a crash) replaces, never adds.
	n.Close()
	n, _ = setupWith(t, sup, cnet.Options{Firewall: fw})
	if got := tables(t, sup); !slices.Equal(got, want) {
		t.Errorf("after a second Setup: tables = %v, want %v", got, want)
	}
	if got := ruleCount(t, sup); got != rules {
		t.Errorf("after a second Setup: %d rules, want %d", got, rules)
	}
	if err := n.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := tables(t, sup); len(got) != 0 {
		t.Errorf("after Remove: tables %v", got)
	}
	if linkExists(t, sup, testBridge.Name) {
		t.Error("after Remove: the bridge is still there")
	}
}

func TestForwardingOnlyWhileNeeded(t *testing.T) {
	sup := testutil.NewNetNS(t)
	newOutside(t, sup)
	state := filepath.Join(t.TempDir(), "net-sysctl")
	n, rep := setupWith(t, sup, cnet.Options{Firewall: &cnet.Firewall{}, StateFile: state})
	if rep.Uplink != "up0" || rep.MTU != 1500 {
		t.Errorf("SetupReport = %+v, want uplink up0, MTU 1500", rep)
	}
	off := map[string]string{"all": "0", "bridge": "0", "uplink": "0", "default": "0"}
	on := map[string]string{"all": "0", "bridge": "1", "uplink": "1", "default": "0"}
	if got := forwarding(t, sup); !equalMaps(got, off) {
		t.Fatalf("forwarding before = %v, want %v", got, off)
	}
	hostBefore, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/forwarding") // read only

	release1, err := n.Forward()
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	release2, err := n.Forward()
	if err != nil {
		t.Fatalf("second Forward: %v", err)
	}
	if got := forwarding(t, sup); !equalMaps(got, on) {
		t.Errorf("forwarding while held = %v, want %v (never conf/all)", got, on)
	}
	if got := guardSet(t, sup); !slices.Equal(got, []string{"up0"}) {
		t.Errorf("guard set = %v, want [up0]", got)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("no state file while forwarding is on: %v", err)
	}
	release1()
	release1() // idempotent
	if got := forwarding(t, sup); !equalMaps(got, on) {
		t.Errorf("forwarding with one holder left = %v, want %v", got, on)
	}
	release2()
	if got := forwarding(t, sup); !equalMaps(got, off) {
		t.Errorf("forwarding after the last release = %v, want %v", got, off)
	}
	if got := guardSet(t, sup); len(got) != 0 {
		t.Errorf("guard set after the last release = %v, want empty", got)
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after the last release: %v", err)
	}
	if hostAfter, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/forwarding"); string(hostAfter) != string(hostBefore) {
		t.Fatalf("the host's forwarding changed: %q -> %q", hostBefore, hostAfter)
	}
}

func TestSetupAfterCrashRestoresSysctlsAndVeths(t *testing.T) {
	sup := testutil.NewNetNS(t)
	newOutside(t, sup)
	state := filepath.Join(t.TempDir(), "net-sysctl")
	n, _ := setupWith(t, sup, cnet.Options{Firewall: &cnet.Firewall{}, StateFile: state})
	svc := testutil.NewNetNS(t)
	if err := n.Attach(svc.FD(), cnet.HostIfName("web"), svcAddr); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Forward(); err != nil {
		t.Fatal(err)
	}
	// The supervisor dies: nothing is released, the service's namespace
	// lives on (svc is still open).
	n.Close()

	_, rep := setupWith(t, sup, cnet.Options{Firewall: &cnet.Firewall{}, StateFile: state})
	wantRestored := []string{"net.ipv4.conf." + testBridge.Name + ".forwarding=0", "net.ipv4.conf.up0.forwarding=0"}
	if !slices.Equal(rep.Restored, wantRestored) {
		t.Errorf("restored %v, want %v", rep.Restored, wantRestored)
	}
	if !slices.Equal(rep.Stale, []string{"crlweb"}) {
		t.Errorf("stale veths %v, want [crlweb]", rep.Stale)
	}
	if got := forwarding(t, sup); got["uplink"] != "0" || got["bridge"] != "0" {
		t.Errorf("forwarding after the restart = %v, want all 0", got)
	}
	if linkExists(t, sup, "crlweb") {
		t.Error("the crashed run's veth is still there")
	}
	if got := tables(t, sup); len(got) != 2 {
		t.Errorf("tables after the restart: %v, want one of each", got)
	}
}

// policy is the firewall of the traffic tests: app may connect to web
// (requires), web lets lab in (allow_from), cut is isolated, other has no
// relation to anyone. web publishes 8080/tcp and 5353/udp.
var policy = []cnet.Endpoint{
	{Name: "web", Addr: netip.MustParseAddr("10.99.0.10"), AllowFrom: []string{"lab"},
		Ports: []cnet.Port{{Host: 8080, Container: 80, Proto: cnet.TCP}, {Host: 5353, Container: 53, Proto: cnet.UDP}}},
	{Name: "app", Addr: netip.MustParseAddr("10.99.0.11"), Peers: []string{"web"}},
	{Name: "other", Addr: netip.MustParseAddr("10.99.0.12")},
	{Name: "cut", Addr: netip.MustParseAddr("10.99.0.13"), Isolated: true, Peers: []string{"web"}},
	{Name: "lab", Addr: netip.MustParseAddr("10.99.0.14")},
}

type appliance struct {
	sup, out *testutil.NetNS
	n        *cnet.Network
	svc      map[string]*testutil.NetNS
}

func newAppliance(t *testing.T) *appliance {
	a := &appliance{sup: testutil.NewNetNS(t), svc: map[string]*testutil.NetNS{}}
	a.out = newOutside(t, a.sup)
	ipIn(t, a.sup, "link", "set", "lo", "up")
	a.n, _ = setupWith(t, a.sup, cnet.Options{Firewall: &cnet.Firewall{Endpoints: policy}, StateFile: filepath.Join(t.TempDir(), "s")})
	for _, e := range policy {
		ns := testutil.NewNetNS(t)
		if err := a.n.Attach(ns.FD(), cnet.HostIfName(e.Name), e.Addr); err != nil {
			t.Fatalf("Attach %s: %v", e.Name, err)
		}
		if !e.Isolated {
			release, err := a.n.Forward()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(release)
		}
		a.svc[e.Name] = ns
	}
	return a
}

// serveTCP accepts connections in ns on port and answers each with the
// address it came from.
func serveTCP(t *testing.T, ns *testutil.NetNS, addr string) {
	t.Helper()
	var l stdnet.Listener
	if err := ns.Do(t, func() error {
		var err error
		l, err = stdnet.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "from %s\n", c.RemoteAddr().(*stdnet.TCPAddr).IP)
			c.Close()
		}
	}()
}

// serveUDP answers every datagram in ns on addr with "from <source>".
func serveUDP(t *testing.T, ns *testutil.NetNS, addr string) {
	t.Helper()
	var pc stdnet.PacketConn
	if err := ns.Do(t, func() error {
		var err error
		pc, err = stdnet.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte("from "+from.(*stdnet.UDPAddr).IP.String()+"\n"), from)
		}
	}()
}

// dial connects from ns (on its own locked thread: the socket must be
// made in ns) and returns what the server said, or the error.
func dial(t *testing.T, ns *testutil.NetNS, network, addr string) (string, error) {
	t.Helper()
	var got string
	err := ns.Do(t, func() error {
		c, err := (&stdnet.Dialer{Timeout: time.Second}).Dial(network, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if network == "udp4" {
			if _, err := c.Write([]byte("hi")); err != nil {
				return err
			}
		}
		b := make([]byte, 128)
		n, err := c.Read(b)
		got = strings.TrimSpace(string(b[:n]))
		if err == io.EOF {
			err = nil
		}
		return err
	})
	return got, err
}

func TestFirewallTraffic(t *testing.T) {
	a := newAppliance(t)
	for _, name := range []string{"web", "app", "lab", "cut"} {
		serveTCP(t, a.svc[name], ":80")
		serveUDP(t, a.svc[name], ":53")
	}
	serveTCP(t, a.out, ":80")
	serveTCP(t, a.sup, ":22")
	web := "10.99.0.10"
	// other routes lab's address through the gateway, around the bridge.
	ipIn(t, a.svc["other"], "route", "add", "10.99.0.14/32", "via", testBridge.Gateway().String())

	cases := []struct {
		name, from, network, to string
		want                    string // "" = no answer
	}{
		{"requires: app reaches web", "app", "tcp4", web + ":80", "from 10.99.0.11"},
		{"requires: and over UDP", "app", "udp4", web + ":53", "from 10.99.0.11"},
		{"allow_from: lab reaches web", "lab", "tcp4", web + ":80", "from 10.99.0.14"},
		{"no relation: other cannot reach web", "other", "tcp4", web + ":80", ""},
		{"no relation: nor over UDP", "other", "udp4", web + ":53", ""},
		{"the other way: web cannot connect to app", "web", "tcp4", "10.99.0.11:80", ""},
		{"the other way: nor send it UDP", "web", "udp4", "10.99.0.11:53", ""},
		{"NAT: app reaches the outside as the uplink", "app", "tcp4", outAddr.Addr().String() + ":80", "from " + upAddr.Addr().String()},
		{"isolated: cut cannot reach the outside", "cut", "tcp4", outAddr.Addr().String() + ":80", ""},
		{"isolated: nor the supervisor", "cut", "tcp4", upAddr.Addr().String() + ":22", ""},
		{"isolated: but web, which it requires", "cut", "tcp4", web + ":80", "from 10.99.0.13"},
		{"isolated: and not through a published port", "cut", "tcp4", upAddr.Addr().String() + ":8080", ""},
		{"hairpin: app through web's published port", "app", "tcp4", upAddr.Addr().String() + ":8080", "from 10.99.0.1"},
		{"no routing around the policy through the gateway", "other", "tcp4", "10.99.0.14:80", ""},
		{"the supervisor is reachable", "app", "tcp4", upAddr.Addr().String() + ":22", "from 10.99.0.11"},
	}
	t.Run("connections", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel() // the blocked ones each wait for a timeout
				checkDial(t, a, c.from, c.network, c.to, c.want)
			})
		}
	})
	t.Run("port forward from outside", func(t *testing.T) {
		got, err := dial(t, a.out, "tcp4", upAddr.Addr().String()+":8080")
		if err != nil || got != "from "+outAddr.Addr().String() {
			t.Errorf("outside -> uplink:8080: %q, %v; want web to see the outside's address", got, err)
		}
		got, err = dial(t, a.out, "udp4", upAddr.Addr().String()+":5353")
		if err != nil || got != "from "+outAddr.Addr().String() {
			t.Errorf("outside -> uplink:5353/udp: %q, %v", got, err)
		}
	})
	t.Run("port forward from the supervisor itself", func(t *testing.T) {
		for _, addr := range []string{upAddr.Addr().String(), testBridge.Gateway().String()} {
			got, err := dial(t, a.sup, "tcp4", addr+":8080")
			if err != nil || !strings.HasPrefix(got, "from ") {
				t.Errorf("supervisor -> %s:8080: %q, %v", addr, got, err)
			}
		}
		// Loopback is not forwarded: the supervisor's own listener (none
		// here) answers, at once, instead of a connection that hangs.
		start := time.Now()
		if got, err := dial(t, a.sup, "tcp4", "127.0.0.1:8080"); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("supervisor -> 127.0.0.1:8080: %q, %v; want connection refused", got, err)
		} else if time.Since(start) > 500*time.Millisecond {
			t.Errorf("refused only after %v", time.Since(start))
		}
	})
	t.Run("port forward: the outside cannot reach services directly", func(t *testing.T) {
		if got, err := dial(t, a.out, "tcp4", web+":80"); err == nil {
			t.Errorf("the outside reached web's address: %q", got)
		}
	})
	t.Run("spoofed source", func(t *testing.T) {
		// cut, isolated, takes app's address to get out: the datagram
		// never leaves its port. app's own gets there, so the recorder
		// works.
		got := recordUDP(t, a.out, ":514")
		ipIn(t, a.svc["cut"], "addr", "add", "10.99.0.11/32", "dev", "eth0")
		sendUDP(t, a.svc["cut"], "10.99.0.11", outAddr.Addr().String()+":514", "spoofed")
		sendUDP(t, a.svc["app"], "10.99.0.11", outAddr.Addr().String()+":514", "genuine")
		time.Sleep(300 * time.Millisecond)
		if msgs := got(); !slices.Equal(msgs, []string{"genuine"}) {
			t.Errorf("the outside received %q, want only app's own datagram", msgs)
		}
	})
}

// recordUDP collects the datagrams that reach ns on addr.
func recordUDP(t *testing.T, ns *testutil.NetNS, addr string) func() []string {
	t.Helper()
	var pc stdnet.PacketConn
	if err := ns.Do(t, func() error {
		var err error
		pc, err = stdnet.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 512)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return func() []string {
		var out []string
		for {
			select {
			case m := <-msgs:
				out = append(out, m)
			default:
				return out
			}
		}
	}
}

// sendUDP sends one datagram from ns, from the source address src.
func sendUDP(t *testing.T, ns *testutil.NetNS, src, to, msg string) {
	t.Helper()
	if err := ns.Do(t, func() error {
		c, err := (&stdnet.Dialer{LocalAddr: &stdnet.UDPAddr{IP: stdnet.ParseIP(src)}}).Dial("udp4", to)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(msg))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// checkDial dials from a service and wants the answer want, or with want
// "", no connection at all.
func checkDial(t *testing.T, a *appliance, from, network, to, want string) {
	t.Helper()
	got, err := dial(t, a.svc[from], network, to)
	if want == "" {
		if err == nil {
			t.Errorf("%s -> %s %s answered %q, want nothing", from, network, to, got)
		}
		return
	}
	if err != nil || got != want {
		t.Errorf("%s -> %s %s: %q, %v; want %q", from, network, to, got, err, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestForwardingReachesAnUplinkThatCameLater(t *testing.T) {
	sup := testutil.NewNetNS(t)
	n, rep := setupWith(t, sup, cnet.Options{Firewall: &cnet.Firewall{}})
	if rep.Uplink != "" {
		t.Fatalf("uplink %q in a namespace without one", rep.Uplink)
	}
	release1, err := n.Forward()
	if err != nil {
		t.Fatal(err)
	}
	if got := sysctl(t, sup, "net/ipv4/conf/"+testBridge.Name+"/forwarding"); got != "1" {
		t.Errorf("bridge forwarding %s, want 1", got)
	}
	newOutside(t, sup) // DHCP finished, say
	release2, err := n.Forward()
	if err != nil {
		t.Fatal(err)
	}
	if got := forwarding(t, sup); got["uplink"] != "1" || got["all"] != "0" {
		t.Errorf("forwarding after the uplink came: %v, want uplink on, all off", got)
	}
	release1()
	release2()
	if got := forwarding(t, sup); got["uplink"] != "0" || got["bridge"] != "0" {
		t.Errorf("forwarding after the last release: %v", got)
	}
}

// TestFirewallForManyServices: one transaction with thousands of rules.
// The kernel acknowledges every message of the batch before corral reads
// any; with the default receive buffer the acks of a few hundred services
// overflowed it (ENOBUFS) and the bridge network was refused.
func TestFirewallForManyServices(t *testing.T) {
	sup := testutil.NewNetNS(t)
	var eps []cnet.Endpoint
	for i := range 1000 {
		e := cnet.Endpoint{Name: fmt.Sprintf("s%04d", i), Addr: netip.AddrFrom4([4]byte{10, 100, byte(i / 250), byte(1 + i%250)})}
		if i > 0 {
			e.Peers = []string{eps[i-1].Name}
		}
		eps = append(eps, e)
	}
	setupWith(t, sup, cnet.Options{Firewall: &cnet.Firewall{Endpoints: eps}})
	if got := ruleCount(t, sup); got < 3000 {
		t.Errorf("%d rules for 1000 services, want at least 3000", got)
	}
}
