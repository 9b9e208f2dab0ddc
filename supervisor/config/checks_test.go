package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
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
