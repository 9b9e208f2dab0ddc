//go:build integration && linux

package net_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/testutil"
	cnet "github.com/corral-init/corral/net"
)

// BenchmarkAttach times what a service start and stop cost the network:
// one Attach into a fresh namespace, then dropping that namespace and
// waiting until the kernel has removed the host end (seen as RTM_DELLINK
// on a monitor socket, so no polling error). The "ip" variant does the same
// configuration with iproute2 processes, as a shell script would:
//
//	ip link add H mtu 1500 master BR up type veth peer name eth0 netns SVC
//	ip link set lo up; ip addr add A/24 dev eth0; ip link set eth0 up
//	ip route add default via GW
//
// each through nsenter. Namespace creation is not timed. Besides ns/op
// (attach + teardown) it reports the medians of both phases: attach-ns is
// what a service start waits for, teardown-ns runs in the background.
func BenchmarkAttach(b *testing.B) {
	sup := newSupervisor(b)
	const hostIf = "crlbench"
	mon := newLinkMonitor(b, sup.ns)

	b.Run("corral", func(b *testing.B) {
		benchAttach(b, sup, mon, hostIf, func(svc *testutil.NetNS) error {
			return sup.n.Attach(svc.FD(), hostIf, svcAddr)
		})
	})
	b.Run("ip", func(b *testing.B) {
		ip, err := exec.LookPath("ip")
		if err != nil {
			b.Skip("ip not installed")
		}
		nsenter, err := exec.LookPath("nsenter")
		if err != nil {
			b.Skip("nsenter not installed")
		}
		prefix := svcAddr.String() + "/" + strconv.Itoa(testBridge.Subnet.Bits())
		benchAttach(b, sup, mon, hostIf, func(svc *testutil.NetNS) error {
			for _, c := range []struct {
				ns   *testutil.NetNS
				args []string
			}{
				{sup.ns, []string{"link", "add", hostIf, "mtu", "1500", "master", testBridge.Name, "up",
					"type", "veth", "peer", "name", "eth0", "netns", svc.Path()}},
				{svc, []string{"link", "set", "lo", "up"}},
				{svc, []string{"addr", "add", prefix, "dev", "eth0"}},
				{svc, []string{"link", "set", "eth0", "up"}},
				{svc, []string{"route", "add", "default", "via", testBridge.Gateway().String()}},
			} {
				args := append([]string{"--net=" + c.ns.Path(), ip}, c.args...)
				if out, err := exec.Command(nsenter, args...).CombinedOutput(); err != nil {
					return fmt.Errorf("ip %v: %w: %s", c.args, err, out)
				}
			}
			return nil
		})
	})
}

func benchAttach(b *testing.B, sup *supervisor, mon *linkMonitor, hostIf string, attach func(*testutil.NetNS) error) {
	benchUpDown(b, sup.ns, mon, hostIf, attach, nil, "attach-ns", "teardown-ns")
}

// benchUpDown times up (a service's network into a fresh namespace),
// then the namespace's end until the kernel removed hostIf, then down
// (what the supervisor does after the exit), and reports the medians of
// up and of the two others together.
func benchUpDown(b *testing.B, sup *testutil.NetNS, mon *linkMonitor, hostIf string, up func(*testutil.NetNS) error, down func() error, upUnit, downUnit string) {
	var upT, downT []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		svc := testutil.NewNetNS(b)
		b.StartTimer()

		t0 := time.Now()
		if err := up(svc); err != nil {
			b.Fatalf("up: %v", err)
		}
		t1 := time.Now()
		if err := svc.Close(); err != nil {
			b.Fatal(err)
		}
		if err := mon.waitDeleted(hostIf, 20*time.Second); err != nil {
			b.Fatal(err)
		}
		if down != nil {
			if err := down(); err != nil {
				b.Fatalf("down: %v", err)
			}
		}
		t2 := time.Now()

		upT = append(upT, t1.Sub(t0))
		downT = append(downT, t2.Sub(t1))
	}
	b.StopTimer()
	b.ReportMetric(float64(median(upT).Nanoseconds()), upUnit)
	b.ReportMetric(float64(median(downT).Nanoseconds()), downUnit)
	if linkExists(b, sup, hostIf) {
		b.Fatalf("%s left behind", hostIf)
	}
}

// BenchmarkServiceNetwork is a bridged service's whole network, as a
// start and a stop cost it: forwarding held (the first service turns it
// on for the bridge and the uplink and records the old values; the next
// one only looks the uplink up), the veth pair with address, route and lo,
// and the container's /etc/hosts and /etc/resolv.conf; then, after the
// namespace is gone, forwarding released. The firewall is installed once
// by Setup and costs a start nothing. The "ip" variant does the same with
// processes, as a script would: sysctl(8) for both switches (and back
// afterwards), the five ip(8) commands of BenchmarkAttach, and the same
// two files.
func BenchmarkServiceNetwork(b *testing.B) {
	sup := testutil.NewNetNS(b)
	newOutside(b, sup)
	ipIn(b, sup, "link", "set", "lo", "up")
	const hostIf = "crlbench"
	fw := &cnet.Firewall{Endpoints: []cnet.Endpoint{{Name: "bench", Addr: svcAddr, Ports: []cnet.Port{{Host: 8080, Container: 80, Proto: cnet.TCP}}, Peers: []string{"db"}},
		{Name: "db", Addr: netip.MustParseAddr("10.99.0.6")}}}
	n, _ := setupWith(b, sup, cnet.Options{Firewall: fw, StateFile: filepath.Join(b.TempDir(), "net-sysctl")})
	mon := newLinkMonitor(b, sup)
	files := b.TempDir()
	hosts := []cnet.Host{{Name: "bench", Addr: svcAddr}, {Name: "db", Addr: netip.MustParseAddr("10.99.0.6")}}
	writeFiles := func() error {
		host, _ := os.ReadFile("/etc/resolv.conf")
		resolv, _ := cnet.ResolvConf(host, nil, true)
		if err := os.WriteFile(filepath.Join(files, "hosts"), cnet.HostsFile("bench", "bench", svcAddr, hosts), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(files, "resolv.conf"), resolv, 0o644)
	}
	corral := func(b *testing.B) {
		var release func()
		benchUpDown(b, sup, mon, hostIf, func(svc *testutil.NetNS) error {
			var err error
			if release, err = n.Forward(); err != nil {
				return err
			}
			if err := n.Attach(svc.FD(), hostIf, svcAddr); err != nil {
				return err
			}
			return writeFiles()
		}, func() error { release(); return nil }, "up-ns", "down-ns")
	}
	b.Run("corral", corral)
	b.Run("corral-next", func(b *testing.B) {
		// Another service holds forwarding already.
		release, err := n.Forward()
		if err != nil {
			b.Fatal(err)
		}
		defer release()
		corral(b)
	})
	b.Run("ip", func(b *testing.B) {
		ip, err1 := exec.LookPath("ip")
		sysctl, err2 := exec.LookPath("sysctl")
		nsenter, err3 := exec.LookPath("nsenter")
		if err := errors.Join(err1, err2, err3); err != nil {
			b.Skip(err)
		}
		prefix := svcAddr.String() + "/" + strconv.Itoa(testBridge.Subnet.Bits())
		forwarding := func(v string) error {
			out, err := exec.Command(nsenter, "--net="+sup.Path(), sysctl, "-qw",
				"net.ipv4.conf."+testBridge.Name+".forwarding="+v, "net.ipv4.conf.up0.forwarding="+v).CombinedOutput()
			if err != nil {
				return fmt.Errorf("sysctl: %w: %s", err, out)
			}
			return nil
		}
		benchUpDown(b, sup, mon, hostIf, func(svc *testutil.NetNS) error {
			if err := forwarding("1"); err != nil {
				return err
			}
			for _, c := range []struct {
				ns   *testutil.NetNS
				args []string
			}{
				{sup, []string{"link", "add", hostIf, "mtu", "1500", "master", testBridge.Name, "up",
					"type", "veth", "peer", "name", "eth0", "netns", svc.Path()}},
				{svc, []string{"link", "set", "lo", "up"}},
				{svc, []string{"addr", "add", prefix, "dev", "eth0"}},
				{svc, []string{"link", "set", "eth0", "up"}},
				{svc, []string{"route", "add", "default", "via", testBridge.Gateway().String()}},
			} {
				args := append([]string{"--net=" + c.ns.Path(), ip}, c.args...)
				if out, err := exec.Command(nsenter, args...).CombinedOutput(); err != nil {
					return fmt.Errorf("ip %v: %w: %s", c.args, err, out)
				}
			}
			return writeFiles()
		}, func() error { return forwarding("0") }, "up-ns", "down-ns")
	})
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// linkMonitor is a netlink socket in a namespace subscribed to link events.
type linkMonitor struct {
	t  testing.TB
	ns *testutil.NetNS
	c  *netlink.Conn
}

func newLinkMonitor(t testing.TB, ns *testutil.NetNS) *linkMonitor {
	t.Helper()
	var c *netlink.Conn
	if err := ns.Do(t, func() error {
		var err error
		c, err = netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK})
		return err
	}); err != nil {
		t.Fatalf("link monitor: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	// Every event costs a whole skb of receive buffer.
	_ = c.SetReadBuffer(4 << 20)
	return &linkMonitor{t: t, ns: ns, c: c}
}

// waitDeleted reads link events until name is deleted.
func (m *linkMonitor) waitDeleted(name string, timeout time.Duration) error {
	if err := m.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	for {
		msgs, err := m.c.Receive()
		if errors.Is(err, unix.ENOBUFS) {
			// Events were lost, maybe ours: look instead.
			if !linkExists(m.t, m.ns, name) {
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for RTM_DELLINK %s: %w", name, err)
		}
		for _, msg := range msgs {
			if msg.Header.Type != unix.RTM_DELLINK {
				continue
			}
			// The bridge announces a port leaving it with an AF_BRIDGE
			// RTM_DELLINK of the same name before the device is gone;
			// only the AF_UNSPEC one means unregistered.
			var lm rtnetlink.LinkMessage
			if err := lm.UnmarshalBinary(msg.Data); err == nil && lm.Family == unix.AF_UNSPEC &&
				lm.Attributes != nil && lm.Attributes.Name == name {
				return nil
			}
		}
	}
}
