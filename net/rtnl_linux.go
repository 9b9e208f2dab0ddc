package net

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/jsimonetti/rtnetlink/v2/driver"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// conn is all this package needs from a NETLINK_ROUTE socket: send one
// request, get its replies or the kernel's errno. *netlink.Conn implements
// it; tests use nltest.Dial, which fakes the kernel at the message boundary
// and decodes errors exactly like a real socket.
type conn interface {
	Execute(m netlink.Message) ([]netlink.Message, error)
	Close() error
}

// dialer opens a conn inside the network namespace nsFD, or in the calling
// thread's namespace when nsFD is 0.
type dialer func(nsFD int) (conn, error)

// dialRoute is the real dialer. For nsFD != 0, mdlayher/netlink creates the
// socket on a locked thread that enters nsFD and returns to its namespace
// before unlocking; the socket stays in nsFD for its whole life.
func dialRoute(nsFD int) (conn, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, err
	}
	// Best effort: with extended acks the kernel says what it rejected.
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	return c, nil
}

// loopbackIndex is lo's ifindex in every network namespace: the kernel
// registers the loopback device first and pins it to 1.
const loopbackIndex = 1

// peerName is the service side of every veth, inside the service's netns.
const peerName = "eth0"

// rtextFilterSkipStats (RTEXT_FILTER_SKIP_STATS, linux/rtnetlink.h; not
// in x/sys/unix) keeps the kernel from appending kilobytes of counters to
// every link it returns.
const rtextFilterSkipStats = 1 << 3

const (
	flagsCreate = netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl
	flagsAck    = netlink.Request | netlink.Acknowledge
)

// request is one rtnetlink request, built by a pure function so that its
// contents can be checked without a kernel.
type request struct {
	typ   netlink.HeaderType
	flags netlink.HeaderFlags
	msg   rtnetlink.Message
}

// do sends r on c and returns the replies. A kernel error comes back as its
// unix.Errno, with the extended-ack message appended when there is one.
func do(c conn, r request) ([]netlink.Message, error) {
	b, err := r.msg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: r.typ, Flags: r.flags},
		Data:   b,
	})
	if err != nil {
		return nil, kernelError(err)
	}
	return msgs, nil
}

// kernelError strips netlink's "netlink receive:" wrapper so messages read
// "create bridge corral0: operation not permitted", keeping the errno.
func kernelError(err error) error {
	var oe *netlink.OpError
	if !errors.As(err, &oe) {
		return err
	}
	var errno unix.Errno
	if !errors.As(oe.Err, &errno) {
		return err
	}
	if oe.Message != "" {
		return fmt.Errorf("%w (%s)", oe.Err, oe.Message)
	}
	return oe.Err
}

// getLink looks a link up by name in c's namespace. A missing link is
// unix.ENODEV.
func getLink(c conn, name string) (rtnetlink.LinkMessage, error) {
	msgs, err := do(c, getLinkReq(name))
	if err != nil {
		return rtnetlink.LinkMessage{}, err
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		var lm rtnetlink.LinkMessage
		if err := lm.UnmarshalBinary(m.Data); err != nil {
			return rtnetlink.LinkMessage{}, fmt.Errorf("decode link %s: %w", name, err)
		}
		return lm, nil
	}
	return rtnetlink.LinkMessage{}, fmt.Errorf("look up link %s: no link in reply", name)
}

// linkKind is the rtnetlink kind of a link ("bridge", "veth"), or "" for
// a device without one (a physical NIC, lo).
func linkKind(lm rtnetlink.LinkMessage) string {
	if lm.Attributes == nil || lm.Attributes.Info == nil {
		return ""
	}
	return lm.Attributes.Info.Kind
}

func getLinkReq(name string) request {
	skipStats := uint32(rtextFilterSkipStats)
	return request{unix.RTM_GETLINK, netlink.Request, &rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Attributes: &rtnetlink.LinkAttributes{Name: name, ExtMask: &skipStats},
	}}
}

// newBridgeReq creates the bridge, already up, with a fixed MAC address.
// Without one the kernel gives a bridge the lowest MAC of its ports and
// changes it whenever ports come and go, which silently invalidates every
// service's ARP entry for the gateway. An address set at creation marks it
// NET_ADDR_SET and the bridge keeps it.
func newBridgeReq(name string) request {
	return request{unix.RTM_NEWLINK, flagsCreate, &rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Flags:  unix.IFF_UP,
		Change: unix.IFF_UP,
		Attributes: &rtnetlink.LinkAttributes{
			Name:    name,
			Address: bridgeMAC(name),
			Info:    &rtnetlink.LinkInfo{Kind: "bridge"},
		},
	}}
}

// bridgeMAC derives a stable, locally administered unicast MAC from the
// bridge name, so it is the same on every boot.
func bridgeMAC(name string) []byte {
	sum := sha256.Sum256([]byte("corral bridge " + name))
	mac := sum[:6:6]
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

func linkUpReq(index uint32) request {
	return request{unix.RTM_NEWLINK, flagsAck, &rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Index:  index,
		Flags:  unix.IFF_UP,
		Change: unix.IFF_UP,
	}}
}

// newVethReq creates a whole veth pair in one request: the host end hostIf,
// already enslaved to the bridge and up, and its peer eth0 created directly
// inside the namespace nsFD (IFLA_NET_NS_FD in the peer's attributes).
// Creating the peer there instead of moving it later avoids a second
// request and the kernel's costly move of a device between namespaces; the
// kernel applies master and flags atomically (a failure unregisters both
// ends).
//
// The peer cannot be brought up here: the kernel applies the peer's
// ifinfomsg flags before it has linked the two ends, so IFF_UP on the peer
// makes veth_open fail and the whole request with ENOTCONN. Its up happens
// inside the namespace afterwards.
func newVethReq(hostIf string, master, mtu uint32, nsFD int) request {
	peer := &rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Attributes: &rtnetlink.LinkAttributes{
			Name:  peerName,
			MTU:   mtu,
			NetNS: rtnetlink.NetNSForFD(uint32(nsFD)),
		},
	}
	return request{unix.RTM_NEWLINK, flagsCreate, &rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Flags:  unix.IFF_UP,
		Change: unix.IFF_UP,
		Attributes: &rtnetlink.LinkAttributes{
			Name:   hostIf,
			MTU:    mtu,
			Master: &master,
			Info: &rtnetlink.LinkInfo{
				Kind: "veth",
				Data: &driver.Veth{PeerInfo: peer},
			},
		},
	}}
}

func delLinkReq(index uint32) request {
	return request{unix.RTM_DELLINK, flagsAck, &rtnetlink.LinkMessage{
		Family: unix.AF_UNSPEC,
		Index:  index,
	}}
}

func delLinkByNameReq(name string) request {
	return request{unix.RTM_DELLINK, flagsAck, &rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Attributes: &rtnetlink.LinkAttributes{Name: name},
	}}
}

// newAddrReq adds p (address and prefix length) to the link index. IPv4
// addresses get the subnet's broadcast address, as `ip addr add ... brd +`
// would; IPv6 ones skip duplicate address detection, since the bridge
// subnet is ours alone and DAD would hold the address tentative for a
// second.
func newAddrReq(index uint32, p netip.Prefix) request {
	ip := p.Addr()
	attrs := &rtnetlink.AddressAttributes{Address: ip.AsSlice(), Local: ip.AsSlice()}
	family := uint8(unix.AF_INET6)
	if ip.Is4() {
		family = unix.AF_INET
		if brd, ok := broadcast(p); ok {
			attrs.Broadcast = brd.AsSlice()
		}
	} else {
		attrs.Flags = unix.IFA_F_NODAD
	}
	return request{unix.RTM_NEWADDR, flagsCreate, &rtnetlink.AddressMessage{
		Family:       family,
		PrefixLength: uint8(p.Bits()),
		Scope:        unix.RT_SCOPE_UNIVERSE,
		Index:        index,
		Attributes:   attrs,
	}}
}

// broadcast is the last address of an IPv4 prefix shorter than /31.
func broadcast(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Addr{}, false
	}
	a := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// defaultRouteReq routes everything via gw out of the link index. The
// connected route of the address added just before must exist already,
// or the kernel rejects the gateway as unreachable (ENETUNREACH).
func defaultRouteReq(index uint32, gw netip.Addr) request {
	family := uint8(unix.AF_INET6)
	if gw.Is4() {
		family = unix.AF_INET
	}
	return request{unix.RTM_NEWROUTE, flagsCreate, &rtnetlink.RouteMessage{
		Family:   family,
		Table:    unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_BOOT,
		Scope:    unix.RT_SCOPE_UNIVERSE,
		Type:     unix.RTN_UNICAST,
		Attributes: rtnetlink.RouteAttributes{
			Gateway:  gw.AsSlice(),
			OutIface: index,
		},
	}}
}

// dumpLinksReq lists every link of the namespace.
func dumpLinksReq() request {
	skipStats := uint32(rtextFilterSkipStats)
	return request{unix.RTM_GETLINK, netlink.Request | netlink.Dump, &rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Attributes: &rtnetlink.LinkAttributes{ExtMask: &skipStats},
	}}
}

func getLinkByIndexReq(index uint32) request {
	skipStats := uint32(rtextFilterSkipStats)
	return request{unix.RTM_GETLINK, netlink.Request, &rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Index:      index,
		Attributes: &rtnetlink.LinkAttributes{ExtMask: &skipStats},
	}}
}

// dumpRoutesReq lists the IPv4 routes of every table.
func dumpRoutesReq() request {
	return request{unix.RTM_GETROUTE, netlink.Request | netlink.Dump, &rtnetlink.RouteMessage{Family: unix.AF_INET}}
}

func setMTUReq(index, mtu uint32) request {
	return request{unix.RTM_NEWLINK, flagsAck, &rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Index:      index,
		Attributes: &rtnetlink.LinkAttributes{MTU: mtu},
	}}
}

// links decodes the RTM_NEWLINK messages of a reply.
func links(msgs []netlink.Message) ([]rtnetlink.LinkMessage, error) {
	var out []rtnetlink.LinkMessage
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		var lm rtnetlink.LinkMessage
		if err := lm.UnmarshalBinary(m.Data); err != nil {
			return nil, fmt.Errorf("decode link: %w", err)
		}
		out = append(out, lm)
	}
	return out, nil
}

// uplink is the interface of the supervisor's IPv4 default route.
type uplink struct {
	index uint32
	name  string
	mtu   uint32
}

// findUplink returns the interface of the main table's IPv4 default route
// with the lowest metric (the first hop of a multipath one), or a zero
// uplink when there is no default route.
func findUplink(c conn) (uplink, error) {
	msgs, err := do(c, dumpRoutesReq())
	if err != nil {
		return uplink{}, fmt.Errorf("list routes: %w", err)
	}
	var best uint32
	bestMetric := ^uint32(0)
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE {
			continue
		}
		var rm rtnetlink.RouteMessage
		if err := rm.UnmarshalBinary(m.Data); err != nil {
			return uplink{}, fmt.Errorf("decode route: %w", err)
		}
		table := uint32(rm.Table)
		if rm.Attributes.Table != 0 {
			table = rm.Attributes.Table
		}
		if rm.DstLength != 0 || table != unix.RT_TABLE_MAIN || rm.Type != unix.RTN_UNICAST {
			continue
		}
		oif := rm.Attributes.OutIface
		if oif == 0 && len(rm.Attributes.Multipath) > 0 {
			oif = rm.Attributes.Multipath[0].Hop.IfIndex
		}
		if oif != 0 && (best == 0 || rm.Attributes.Priority < bestMetric) {
			best, bestMetric = oif, rm.Attributes.Priority
		}
	}
	if best == 0 {
		return uplink{}, nil
	}
	msgs, err = do(c, getLinkByIndexReq(best))
	if err != nil {
		return uplink{}, fmt.Errorf("look up link %d of the default route: %w", best, err)
	}
	ls, err := links(msgs)
	if err != nil || len(ls) == 0 || ls[0].Attributes == nil {
		return uplink{}, fmt.Errorf("look up link %d of the default route: no link in reply (%v)", best, err)
	}
	return uplink{index: best, name: ls[0].Attributes.Name, mtu: ls[0].Attributes.MTU}, nil
}
