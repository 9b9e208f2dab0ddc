package net

import (
	"net/netip"
	"slices"
	"testing"
)

func TestHostsFile(t *testing.T) {
	hosts := []Host{
		{"web", netip.MustParseAddr("10.88.0.10")},
		{"db", netip.MustParseAddr("10.88.0.1")}, // a host-mode service: the gateway
		{"app", netip.MustParseAddr("10.88.0.30")},
		{"none", netip.Addr{}}, // no address: left out
	}
	tests := []struct {
		name, svc, hostname string
		self                netip.Addr
		want                string
	}{{
		name: "bridged, hostname differs", svc: "app", hostname: "app.local", self: netip.MustParseAddr("10.88.0.30"),
		want: "# /etc/hosts of app, written by corral\n" +
			"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"10.88.0.30\tapp app.local\n" +
			"10.88.0.1\tdb\n10.88.0.10\tweb\n",
	}, {
		name: "no address of its own", svc: "solo", hostname: "solo",
		want: "# /etc/hosts of solo, written by corral\n" +
			"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"127.0.1.1\tsolo\n" +
			"10.88.0.30\tapp\n10.88.0.1\tdb\n10.88.0.10\tweb\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(HostsFile(tt.svc, tt.hostname, tt.self, hosts)); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	host := []byte("# managed by udhcpc\nsearch lan\nnameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver ::1\noptions edns0 trust-ad\nnameserver bogus\n")
	loop := []netip.Addr{netip.MustParseAddr("127.0.0.53"), netip.MustParseAddr("::1")}
	tests := []struct {
		name        string
		servers     []netip.Addr
		own         bool
		want        string
		wantDropped []netip.Addr
	}{{
		name: "bridged: loopback servers dropped", own: true,
		want:        "# /etc/resolv.conf written by corral\nsearch lan\noptions edns0 trust-ad\nnameserver 192.168.1.1\n",
		wantDropped: loop,
	}, {
		name: "host network: kept",
		want: "# /etc/resolv.conf written by corral\nsearch lan\noptions edns0 trust-ad\nnameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver ::1\n",
	}, {
		name: "configured servers replace the host's", own: true, servers: []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("2606:4700:4700::1111")},
		want: "# /etc/resolv.conf written by corral\nsearch lan\noptions edns0 trust-ad\nnameserver 1.1.1.1\nnameserver 2606:4700:4700::1111\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, dropped := ResolvConf(host, tt.servers, tt.own)
			if string(got) != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			if !slices.Equal(dropped, tt.wantDropped) {
				t.Errorf("dropped %v, want %v", dropped, tt.wantDropped)
			}
		})
	}
}
