package net

import (
	"slices"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// replies encodes several rtnetlink messages as one reply.
func replies(req netlink.Message, typ netlink.HeaderType, msgs ...interface{ MarshalBinary() ([]byte, error) }) []netlink.Message {
	var out []netlink.Message
	for _, m := range msgs {
		b, err := m.MarshalBinary()
		if err != nil {
			panic(err)
		}
		h := req.Header
		h.Type, h.Flags = typ, 0
		out = append(out, netlink.Message{Header: h, Data: b})
	}
	return out
}

func route(dstLen uint8, table uint8, typ uint8, oif, metric uint32) *rtnetlink.RouteMessage {
	return &rtnetlink.RouteMessage{
		Family: unix.AF_INET, DstLength: dstLen, Table: table, Type: typ,
		Attributes: rtnetlink.RouteAttributes{OutIface: oif, Priority: metric, Dst: make([]byte, 4)},
	}
}

func TestFindUplink(t *testing.T) {
	tests := []struct {
		name   string
		routes []interface{ MarshalBinary() ([]byte, error) }
		want   uplink
		reqs   []string
	}{{
		name: "lowest metric of the main table's unicast defaults",
		routes: []interface{ MarshalBinary() ([]byte, error) }{
			route(24, unix.RT_TABLE_MAIN, unix.RTN_UNICAST, 2, 0),    // a subnet
			route(0, unix.RT_TABLE_LOCAL, unix.RTN_UNICAST, 5, 0),    // another table
			route(0, unix.RT_TABLE_MAIN, unix.RTN_UNREACHABLE, 6, 1), // not unicast
			route(0, unix.RT_TABLE_MAIN, unix.RTN_UNICAST, 3, 100),
			route(0, unix.RT_TABLE_MAIN, unix.RTN_UNICAST, 4, 50),
		},
		want: uplink{index: 4, name: "wlan0", mtu: 1420},
		reqs: []string{"sup getroute[dump]", "sup getlink index=4 ext_mask=0x8"},
	}, {
		name:   "no default route",
		routes: []interface{ MarshalBinary() ([]byte, error) }{route(24, unix.RT_TABLE_MAIN, unix.RTN_UNICAST, 2, 0)},
		reqs:   []string{"sup getroute[dump]"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
				switch desc {
				case "sup getroute[dump]":
					return replies(req, unix.RTM_NEWROUTE, tt.routes...), 0
				case "sup getlink index=4 ext_mask=0x8":
					return linkReply(req, link(4, "wlan0", "", unix.IFF_UP, 1420)), 0
				}
				return nil, unix.EINVAL
			}}
			got, err := findUplink(k.conn("sup"))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("findUplink = %+v, want %+v", got, tt.want)
			}
			wantRequests(t, k, tt.reqs)
		})
	}
}

func TestRemoveStaleVeths(t *testing.T) {
	all := []rtnetlink.LinkMessage{
		link(1, "lo", "", unix.IFF_UP, 65536),
		link(7, "corral0", "bridge", unix.IFF_UP, 1500),
		link(8, "crlweb", "veth", unix.IFF_UP, 1500),
		link(9, "crlbr", "bridge", unix.IFF_UP, 1500), // someone's bridge: not a veth
		link(10, "eth0", "veth", unix.IFF_UP, 1500),   // not corral's name
		link(11, "crlgone", "veth", unix.IFF_UP, 1500),
	}
	k := &fakeKernel{reply: func(desc string, req netlink.Message) ([]netlink.Message, unix.Errno) {
		switch desc {
		case "sup getlink[dump] ext_mask=0x8":
			var ms []interface{ MarshalBinary() ([]byte, error) }
			for i := range all {
				ms = append(ms, &all[i])
			}
			return replies(req, unix.RTM_NEWLINK, ms...), 0
		case "sup dellink[ack] index=11":
			return nil, unix.ENODEV // went by itself meanwhile
		}
		return nil, 0
	}}
	stale, err := removeStaleVeths(k.conn("sup"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"crlweb", "crlgone"}; !slices.Equal(stale, want) {
		t.Errorf("stale = %v, want %v", stale, want)
	}
	wantRequests(t, k, []string{"sup getlink[dump] ext_mask=0x8", "sup dellink[ack] index=8", "sup dellink[ack] index=11"})
}
