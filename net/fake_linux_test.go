package net

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeKernel answers rtnetlink requests at the message boundary: every
// request is decoded into a one-line description (what a reader of `ip
// monitor` would want to see), recorded, and answered by reply, which
// returns either a reply message to send back or an errno (0 = ack).
type fakeKernel struct {
	mu    sync.Mutex
	log   []string
	reply func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno)
}

// conn returns a conn whose requests are recorded with the prefix ns
// ("sup" for the supervisor's socket, "svc" for one inside a service).
func (k *fakeKernel) conn(ns string) conn {
	return nltest.Dial(func(reqs []netlink.Message) ([]netlink.Message, error) {
		if len(reqs) != 1 {
			return nil, fmt.Errorf("fake: %d messages in one request, want 1", len(reqs))
		}
		req := reqs[0]
		desc := ns + " " + describe(req)
		k.mu.Lock()
		k.log = append(k.log, desc)
		k.mu.Unlock()
		var msgs []netlink.Message
		var errno unix.Errno
		if k.reply != nil {
			msgs, errno = k.reply(desc, req)
		}
		if msgs != nil {
			return msgs, nil
		}
		// An ack or error. The kernel's reply carries its own flags, not
		// the request's (nltest.Error copies those, and NLM_F_EXCL would
		// read as NLM_F_ACK_TLVS).
		msgs, err := nltest.Error(int(errno), reqs)
		for i := range msgs {
			msgs[i].Header.Flags = 0
		}
		return msgs, err
	})
}

func (k *fakeKernel) requests() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.log)
}

// dialer returns a dialer for in-namespace sockets that records the fd it
// was asked for.
func (k *fakeKernel) dialer(fds *[]int) dialer {
	return func(nsFD int) (conn, error) {
		*fds = append(*fds, nsFD)
		return k.conn("svc"), nil
	}
}

// linkReply answers a GETLINK with one link.
func linkReply(req netlink.Message, lm rtnetlink.LinkMessage) []netlink.Message {
	b, err := lm.MarshalBinary()
	if err != nil {
		panic(err)
	}
	h := req.Header
	h.Type = unix.RTM_NEWLINK
	h.Flags = 0
	return []netlink.Message{{Header: h, Data: b}}
}

func link(index uint32, name, kind string, flags, mtu uint32) rtnetlink.LinkMessage {
	lm := rtnetlink.LinkMessage{
		Family:     unix.AF_UNSPEC,
		Index:      index,
		Flags:      flags,
		Attributes: &rtnetlink.LinkAttributes{Name: name, MTU: mtu},
	}
	if kind != "" {
		lm.Attributes.Info = &rtnetlink.LinkInfo{Kind: kind}
	}
	return lm
}

func wantRequests(t *testing.T, k *fakeKernel, want []string) {
	t.Helper()
	got := k.requests()
	if !slices.Equal(got, want) {
		t.Errorf("requests:\ngot:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// describe decodes a request the way the kernel would read it, straight
// from the bytes, so these tests check the wire format and not just our
// own structs.
func describe(m netlink.Message) string {
	var b strings.Builder
	switch m.Header.Type {
	case unix.RTM_GETLINK:
		b.WriteString("getlink")
	case unix.RTM_NEWLINK:
		b.WriteString("newlink")
	case unix.RTM_DELLINK:
		b.WriteString("dellink")
	case unix.RTM_NEWADDR:
		b.WriteString("newaddr")
	case unix.RTM_NEWROUTE:
		b.WriteString("newroute")
	case unix.RTM_GETROUTE:
		b.WriteString("getroute")
	default:
		fmt.Fprintf(&b, "type%d", m.Header.Type)
	}
	b.WriteString(describeFlags(m.Header.Flags))
	switch m.Header.Type {
	case unix.RTM_GETLINK, unix.RTM_NEWLINK, unix.RTM_DELLINK:
		b.WriteString(describeLink(m.Data))
	case unix.RTM_NEWADDR:
		var am rtnetlink.AddressMessage
		if err := am.UnmarshalBinary(m.Data); err != nil {
			return b.String() + " undecodable: " + err.Error()
		}
		ip, _ := netip.AddrFromSlice(am.Attributes.Address)
		fmt.Fprintf(&b, " index=%d %s/%d", am.Index, ip, am.PrefixLength)
		if am.Attributes.Local != nil {
			l, _ := netip.AddrFromSlice(am.Attributes.Local)
			fmt.Fprintf(&b, " local=%s", l)
		}
		if am.Attributes.Broadcast != nil {
			brd, _ := netip.AddrFromSlice(am.Attributes.Broadcast)
			fmt.Fprintf(&b, " brd=%s", brd)
		}
		if am.Attributes.Flags&unix.IFA_F_NODAD != 0 {
			b.WriteString(" nodad")
		}
	case unix.RTM_NEWROUTE:
		var rm rtnetlink.RouteMessage
		if err := rm.UnmarshalBinary(m.Data); err != nil {
			return b.String() + " undecodable: " + err.Error()
		}
		dst := "default"
		if rm.DstLength != 0 || rm.Attributes.Dst != nil {
			dst = fmt.Sprintf("%s/%d", rm.Attributes.Dst, rm.DstLength)
		}
		gw, _ := netip.AddrFromSlice(rm.Attributes.Gateway)
		fmt.Fprintf(&b, " %s via %s oif=%d table=%d proto=%d scope=%d type=%d",
			dst, gw, rm.Attributes.OutIface, rm.Table, rm.Protocol, rm.Scope, rm.Type)
	}
	return b.String()
}

func describeFlags(f netlink.HeaderFlags) string {
	var s []string
	// NLM_F_ROOT and NLM_F_MATCH reuse the bits of NLM_F_REPLACE and
	// NLM_F_EXCL: a GET has none of those.
	dump := f&netlink.Dump == netlink.Dump
	if dump {
		f &^= netlink.Dump
	}
	if f&netlink.Create != 0 {
		s = append(s, "create")
	}
	if f&netlink.Excl != 0 {
		s = append(s, "excl")
	}
	if f&netlink.Acknowledge != 0 {
		s = append(s, "ack")
	}
	if dump {
		s = append(s, "dump")
	}
	return flagList(s)
}

func flagList(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "[" + strings.Join(s, ",") + "]"
}

// describeLink decodes an ifinfomsg and its attributes, including the veth
// peer nested in IFLA_LINKINFO/IFLA_INFO_DATA/VETH_INFO_PEER, which
// rtnetlink itself does not decode.
func describeLink(data []byte) string {
	if len(data) < unix.SizeofIfInfomsg {
		return " short ifinfomsg"
	}
	var lm rtnetlink.LinkMessage
	if err := lm.UnmarshalBinary(data); err != nil {
		return " undecodable: " + err.Error()
	}
	var b strings.Builder
	if lm.Index != 0 {
		fmt.Fprintf(&b, " index=%d", lm.Index)
	}
	if lm.Change&unix.IFF_UP != 0 {
		if lm.Flags&unix.IFF_UP != 0 {
			b.WriteString(" up")
		} else {
			b.WriteString(" down")
		}
	}
	if len(data) == unix.SizeofIfInfomsg {
		return b.String()
	}
	ad, err := netlink.NewAttributeDecoder(data[unix.SizeofIfInfomsg:])
	if err != nil {
		return b.String() + " undecodable attrs"
	}
	for ad.Next() {
		switch ad.Type() {
		case unix.IFLA_IFNAME:
			fmt.Fprintf(&b, " name=%s", ad.String())
		case unix.IFLA_MTU:
			fmt.Fprintf(&b, " mtu=%d", ad.Uint32())
		case unix.IFLA_MASTER:
			fmt.Fprintf(&b, " master=%d", ad.Uint32())
		case unix.IFLA_ADDRESS:
			fmt.Fprintf(&b, " address=%x", ad.Bytes())
		case unix.IFLA_NET_NS_FD:
			fmt.Fprintf(&b, " netns_fd=%d", ad.Uint32())
		case unix.IFLA_NET_NS_PID:
			fmt.Fprintf(&b, " netns_pid=%d", ad.Uint32())
		case unix.IFLA_EXT_MASK:
			fmt.Fprintf(&b, " ext_mask=%#x", ad.Uint32())
		case unix.IFLA_LINKINFO:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case unix.IFLA_INFO_KIND:
						fmt.Fprintf(&b, " kind=%s", nad.String())
					case unix.IFLA_INFO_DATA:
						nad.Nested(func(dad *netlink.AttributeDecoder) error {
							for dad.Next() {
								if dad.Type() == 1 { // VETH_INFO_PEER
									fmt.Fprintf(&b, " peer{%s }", describeLink(dad.Bytes()))
								}
							}
							return nil
						})
					}
				}
				return nil
			})
		default:
			fmt.Fprintf(&b, " attr%d", ad.Type())
		}
	}
	if err := ad.Err(); err != nil {
		fmt.Fprintf(&b, " attr error: %v", err)
	}
	return b.String()
}
