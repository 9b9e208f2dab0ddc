package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	cnet "github.com/corral-init/corral/net"
)

func TestGlobalChecks(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		want      []string
		wantRange netip.Prefix
	}{
		{name: "ok", text: "[network]\nsubnet = \"172.16.0.0/12\"\n", wantRange: netip.MustParsePrefix("172.16.0.0/12")},
		{name: "ipv6", text: "[network]\nsubnet = \"fd00::/64\"\n", want: []string{
			`c.toml:2: network.subnet: invalid subnet "fd00::/64" (use an IPv4 network in CIDR form, such as "10.88.0.0/24"); using the default "10.88.0.0/24"`,
		}},
		{name: "no prefix", text: "[network]\nsubnet = \"10.0.0.0\"\n", want: []string{
			`c.toml:2: network.subnet: invalid subnet "10.0.0.0" (use an IPv4 network in CIDR form, such as "10.88.0.0/24"); using the default "10.88.0.0/24"`,
		}},
		{name: "too big", text: "network.subnet = \"10.0.0.0/7\"\n", want: []string{
			`c.toml:1: network.subnet: prefix length /7 is out of range (/8 to /30: the bridge and at least one service need an address); using the default "10.88.0.0/24"`,
		}},
		{name: "empty hostname", text: "hostname = \"\"\n", want: []string{
			`c.toml:1: hostname: invalid hostname "" (dot-separated labels of letters, digits and "-", at most 64 characters); using the default "corral"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(file, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			g, errs := loadGlobal(file)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error()[len(filepath.Dir(file))+1:])
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems\n got %q\nwant %q", got, tt.want)
			}
			want := defaultGlobal(file).Network.Subnet
			if tt.wantRange.IsValid() {
				want = tt.wantRange
			}
			if g.Network.Subnet != want {
				t.Errorf("subnet = %v, want %v", g.Network.Subnet, want)
			}
		})
	}
}

func TestStaticProblem(t *testing.T) {
	b := cnet.BridgeConfig{Subnet: netip.MustParsePrefix("10.1.2.0/30")}
	for addr, want := range map[string]string{
		"10.1.2.2": "",
		"10.1.2.0": "address 10.1.2.0 is the subnet's network address; use one from 10.1.2.2 to 10.1.2.2",
		"10.1.2.1": "address 10.1.2.1 is the bridge's own address (the gateway); use one from 10.1.2.2 to 10.1.2.2",
		"10.1.2.3": "address 10.1.2.3 is the subnet's broadcast address; use one from 10.1.2.2 to 10.1.2.2",
		"10.1.2.4": "address 10.1.2.4 is outside the bridge subnet 10.1.2.0/30",
	} {
		if got := staticProblem(b, netip.MustParseAddr(addr)); got != want {
			t.Errorf("staticProblem(%s) = %q, want %q", addr, got, want)
		}
	}
	for prefix, want := range map[string]string{"10.0.0.0/8": "10.255.255.255", "10.88.0.0/24": "10.88.0.255", "10.88.0.0/30": "10.88.0.3"} {
		if got := broadcast(netip.MustParsePrefix(prefix)).String(); got != want {
			t.Errorf("broadcast(%s) = %s, want %s", prefix, got, want)
		}
	}
}

// autoUnits makes bridged "auto" services, as link sees them, in name
// order.
func autoUnits(names ...string) []*unit {
	slices.Sort(names)
	var units []*unit
	for _, n := range names {
		units = append(units, &unit{name: n, auto: true, svc: &Service{Name: n, Net: cnet.Spec{Mode: cnet.ModeBridge}}})
	}
	return units
}

func addressesOf(units []*unit) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for _, u := range units {
		out[u.name] = u.svc.Net.Address
	}
	return out
}

func TestAutoAddresses(t *testing.T) {
	b := cnet.BridgeConfig{Subnet: netip.MustParsePrefix("192.168.7.0/28")}
	size := poolSize(b.Subnet)
	if size != 13 {
		t.Fatalf("poolSize(/28) = %d, want 13", size)
	}
	// The homes testdata/good relies on: both 3.
	for name, want := range map[string]uint64{"minimal": 3, "zz-auto": 3} {
		if got := homeSlot(name, size); got != want {
			t.Errorf("homeSlot(%s) = %d, want %d", name, got, want)
		}
	}

	t.Run("a shared home goes to the first name, the next takes the next free", func(t *testing.T) {
		// Find two names with the same home, and a static address on it.
		var a, c string
		for i := 0; a == "" || c == ""; i++ {
			n := fmt.Sprintf("svc%d", i)
			switch {
			case homeSlot(n, size) != 0:
			case a == "":
				a = n
			default:
				c = n
			}
		}
		units := autoUnits(a, c)
		assignAddresses(units, b)
		got := addressesOf(units)
		if got[a] != netip.MustParseAddr("192.168.7.2") || got[c] != netip.MustParseAddr("192.168.7.3") {
			t.Errorf("%s and %s (both home 0): got %v, want .2 and .3", a, c, got)
		}
	})

	t.Run("adding or removing a service moves only those that share its home or were displaced", func(t *testing.T) {
		b := cnet.BridgeConfig{Subnet: netip.MustParsePrefix("10.88.0.0/24")}
		size := poolSize(b.Subnet)
		var names []string
		for i := range 60 {
			names = append(names, fmt.Sprintf("service-%02d", i))
		}
		base := autoUnits(names...)
		assignAddresses(base, b)
		before := addressesOf(base)
		atHome := func(n string) bool { return before[n] == poolAddr(b.Gateway().Next(), homeSlot(n, size)) }
		for i := range 200 {
			extra := fmt.Sprintf("new-%d", i)
			units := autoUnits(append(slices.Clone(names), extra)...)
			assignAddresses(units, b)
			for n, a := range addressesOf(units) {
				if n == extra || a == before[n] {
					continue
				}
				if atHome(n) && homeSlot(n, size) != homeSlot(extra, size) {
					t.Errorf("adding %s moved %s (home %d, not %s's %d) from %s to %s", extra, n, homeSlot(n, size), extra, homeSlot(extra, size), before[n], a)
				}
			}
		}
		for i, gone := range names {
			units := autoUnits(slices.Delete(slices.Clone(names), i, i+1)...)
			assignAddresses(units, b)
			for n, a := range addressesOf(units) {
				if a != before[n] && atHome(n) {
					t.Errorf("removing %s moved %s, which had its home %s, to %s", gone, n, before[n], a)
				}
			}
		}
	})

	t.Run("static addresses are reserved first", func(t *testing.T) {
		units := autoUnits("minimal", "zz-auto")
		static := &unit{name: "pin", svc: &Service{Name: "pin", Net: cnet.Spec{Mode: cnet.ModeBridge, Address: netip.MustParseAddr("192.168.7.5")}}}
		units = append(units, static)
		assignAddresses(units, b)
		got := addressesOf(units)
		// The home of both, .5, is pinned: minimal, first by name, takes the
		// next free address, .6, and zz-auto the one after.
		want := map[string]netip.Addr{"minimal": netip.MustParseAddr("192.168.7.6"), "zz-auto": netip.MustParseAddr("192.168.7.7"), "pin": netip.MustParseAddr("192.168.7.5")}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}
