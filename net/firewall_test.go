package net

import (
	"net/netip"
	"strings"
	"testing"
)

// appliance is a small policy: web publishes two ports; app requires db
// and web lets app in; db is reached only from app; lab is isolated but
// starts after a host-mode service; "ghost" is not bridged.
var appliance = Firewall{
	Bridge: BridgeConfig{Name: "corral0", Subnet: netip.MustParsePrefix("10.88.0.0/24")},
	Endpoints: []Endpoint{
		{Name: "web", Addr: netip.MustParseAddr("10.88.0.10"), Ports: []Port{{8080, 80, TCP}, {5353, 53, UDP}}, AllowFrom: []string{"app", "ghost"}},
		{Name: "db", Addr: netip.MustParseAddr("10.88.0.20")},
		{Name: "app", Addr: netip.MustParseAddr("10.88.0.30"), Peers: []string{"db", "ghost", "app"}},
		{Name: "lab", Addr: netip.MustParseAddr("10.88.0.40"), Isolated: true, Host: true, Peers: []string{"db"}, AllowFrom: []string{"db"}},
	},
}

func TestFirewallTables(t *testing.T) {
	want := `table ip corral {
	set guard {
		type ifname
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		fib daddr type local meta l4proto tcp tcp dport 8080 dnat to 10.88.0.10:80
		fib daddr type local meta l4proto udp udp dport 5353 dnat to 10.88.0.10:53
	}
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto tcp tcp dport 8080 dnat to 10.88.0.10:80
		ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto udp udp dport 5353 dnat to 10.88.0.10:53
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		oifname "corral0" ip saddr 10.88.0.0/24 ip daddr 10.88.0.0/24 ct status dnat masquerade
		oifname != "corral0" ip saddr 10.88.0.0/24 masquerade
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "corral0" ip saddr 10.88.0.40 oifname != "corral0" drop
		iifname "corral0" ip saddr 10.88.0.40 ct status dnat drop
		iifname != "corral0" oifname "corral0" ct state established,related accept
		iifname != "corral0" oifname "corral0" ct status dnat accept
		iifname != "corral0" oifname "corral0" drop
		iifname @guard oifname != "corral0" drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "corral0" ct state established,related accept
		iifname "corral0" ip saddr 10.88.0.40 ip daddr 10.88.0.1 accept
		iifname "corral0" ip saddr 10.88.0.40 drop
	}
}

table bridge corral {
	set udp_flows {
		type ipv4_addr . inet_service . ipv4_addr . inet_service
		flags dynamic,timeout
		timeout 1m0s
	}
	chain prerouting {
		type filter hook prerouting priority -200; policy accept;
		iifname "crlapp" ether type ip ip saddr 10.88.0.30 accept
		iifname "crlapp" ether type arp arp saddr ip 10.88.0.30 accept
		iifname "crldb" ether type ip ip saddr 10.88.0.20 accept
		iifname "crldb" ether type arp arp saddr ip 10.88.0.20 accept
		iifname "crllab" ether type ip ip saddr 10.88.0.40 accept
		iifname "crllab" ether type arp arp saddr ip 10.88.0.40 accept
		iifname "crlweb" ether type ip ip saddr 10.88.0.10 accept
		iifname "crlweb" ether type arp arp saddr ip 10.88.0.10 accept
		iifname "crl*" drop
	}
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "crl*" ether type ip ip daddr 10.88.0.0/24 ip daddr != 10.88.0.1 drop
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "crl*" ether type arp accept
		iifname "crlapp" oifname "crldb" meta l4proto udp update @udp_flows { ip saddr . udp sport . ip daddr . udp dport }
		iifname "crlapp" oifname "crldb" accept
		iifname "crlapp" oifname "crlweb" meta l4proto udp update @udp_flows { ip saddr . udp sport . ip daddr . udp dport }
		iifname "crlapp" oifname "crlweb" accept
		iifname "crldb" oifname "crllab" accept
		iifname "crllab" oifname "crldb" accept
		iifname "crldb" oifname "crlapp" jump reply
		iifname "crlweb" oifname "crlapp" jump reply
		iifname "crl*" drop
	}
	chain reply {
		meta l4proto tcp tcp flags & (syn | ack) != syn accept
		meta l4proto udp ip daddr . udp dport . ip saddr . udp sport @udp_flows accept
		meta l4proto icmp icmp type echo-reply accept
		meta l4proto icmp icmp type destination-unreachable accept
		meta l4proto icmp icmp type time-exceeded accept
		meta l4proto icmp icmp type parameter-problem accept
		drop
	}
}
`
	if got := appliance.String(); got != want {
		t.Errorf("tables:\n%s", diffLines(got, want))
	}
}

func TestFirewallWithoutPortsOrIsolation(t *testing.T) {
	fw := Firewall{Bridge: appliance.Bridge, Endpoints: []Endpoint{{Name: "a", Addr: netip.MustParseAddr("10.88.0.2"), Peers: []string{"b"}}}}
	s := fw.String()
	for _, absent := range []string{"dnat to", "ct status dnat masquerade", "ip saddr 10.88.0.2 drop", "jump reply", `oifname "crl`} {
		if strings.Contains(s, absent) {
			t.Errorf("%q in tables without ports, isolation or a peer on the bridge:\n%s", absent, s)
		}
	}
}

// diffLines shows got and want side by side, marking lines that differ.
func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		mark := "  "
		if gl != wl {
			mark = "! "
		}
		b.WriteString(mark + "got:  " + gl + "\n")
		if gl != wl {
			b.WriteString(mark + "want: " + wl + "\n")
		}
	}
	return b.String()
}
