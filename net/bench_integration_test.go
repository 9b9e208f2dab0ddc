//go:build integration && linux

package net_test

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/testutil"
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
	var attachT, teardownT []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		svc := testutil.NewNetNS(b)
		b.StartTimer()

		t0 := time.Now()
		if err := attach(svc); err != nil {
			b.Fatalf("attach: %v", err)
		}
		t1 := time.Now()
		if err := svc.Close(); err != nil {
			b.Fatal(err)
		}
		if err := mon.waitDeleted(hostIf, 20*time.Second); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()

		attachT = append(attachT, t1.Sub(t0))
		teardownT = append(teardownT, t2.Sub(t1))
	}
	b.StopTimer()
	b.ReportMetric(float64(median(attachT).Nanoseconds()), "attach-ns")
	b.ReportMetric(float64(median(teardownT).Nanoseconds()), "teardown-ns")
	if linkExists(b, sup.ns, hostIf) {
		b.Fatalf("%s left behind", hostIf)
	}
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
