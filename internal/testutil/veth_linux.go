package testutil

import (
	"fmt"
	"testing"

	"github.com/jsimonetti/rtnetlink/v2"
	"github.com/jsimonetti/rtnetlink/v2/driver"
)

// Veth makes a veth pair: nameA in a, its peer nameB in b, both down.
// It speaks rtnetlink itself because busybox's ip (the emulated guest's
// only one) ignores the peer's "netns".
func Veth(t testing.TB, a *NetNS, nameA string, b *NetNS, nameB string) {
	t.Helper()
	err := a.Do(t, func() error {
		c, err := rtnetlink.Dial(nil)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Link.New(&rtnetlink.LinkMessage{
			Attributes: &rtnetlink.LinkAttributes{
				Name: nameA,
				Info: &rtnetlink.LinkInfo{Kind: "veth", Data: &driver.Veth{PeerInfo: &rtnetlink.LinkMessage{
					Attributes: &rtnetlink.LinkAttributes{Name: nameB, NetNS: rtnetlink.NetNSForFD(uint32(b.FD()))},
				}}},
			},
		})
	})
	if err != nil {
		t.Fatalf("veth %s <-> %s: %v", nameA, nameB, fmt.Errorf("rtnetlink: %w", err))
	}
}
