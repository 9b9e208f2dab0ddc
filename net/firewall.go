package net

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file is the firewall as plain data: Firewall.tables turns the
// services' policy into the two nftables tables corral owns, as values
// that can be printed (Firewall.String, in nft's own syntax) and
// unit-tested on any OS. firewall_linux.go compiles the same values into
// netlink messages; nothing else decides what a rule does.

// TableName names corral's nftables tables, one per family (ip and
// bridge). Nothing else of corral's lives in nftables.
const TableName = "corral"

// Firewall is what corral's nftables tables enforce for the bridge: the
// policy between services, NAT to the outside and published ports.
type Firewall struct {
	Bridge BridgeConfig
	// Endpoints are the bridged services, running or not: their rules
	// name their interfaces and addresses, which do not change, so the
	// tables are made once and never touched on a start or stop.
	Endpoints []Endpoint
}

// Endpoint is one bridged service as the firewall sees it.
type Endpoint struct {
	// Name is the service's; its veth's host end is HostIfName(Name).
	Name string
	Addr netip.Addr
	// Ports are published on the appliance's own addresses.
	Ports []Port
	// Peers are the services it may open connections to (requires and
	// after); names that are not endpoints are ignored.
	Peers []string
	// AllowFrom are the services that may open connections to it.
	AllowFrom []string
	// Isolated: nothing beyond the bridge (no NAT, no supervisor
	// addresses) except, with Host, the supervisor's own address on the
	// bridge, for a host-mode service it depends on.
	Isolated, Host bool
}

// udpFlowTimeout is how long a UDP exchange opened by an allowed service
// may be answered after its last datagram (conntrack's UDP stream timeout
// is 120s, an unanswered one 30s).
const udpFlowTimeout = 60 * time.Second

// Sets and chains referred to by name.
const (
	// guardSet holds the uplinks whose forwarding corral turned on: what
	// arrives there is forwarded to the bridge only.
	guardSet = "guard"
	// udpFlowSet remembers UDP exchanges opened by a service that may
	// connect, so the other side may answer (the bridge family has no
	// connection tracking without nf_conntrack_bridge).
	udpFlowSet = "udp_flows"
	replyChain = "reply"
)

// pair is an allowed direction of connections between two services.
type pair struct{ from, to string }

// pairs lists who may connect to whom among the endpoints, in a fixed
// order, and reports for each whether the other direction is allowed too.
func (f Firewall) pairs() (allowed []pair, both map[pair]bool) {
	known := map[string]bool{}
	for _, e := range f.Endpoints {
		known[e.Name] = true
	}
	set := map[pair]bool{}
	for _, e := range f.Endpoints {
		for _, p := range e.Peers {
			if known[p] && p != e.Name {
				set[pair{e.Name, p}] = true
			}
		}
		for _, w := range e.AllowFrom {
			if known[w] && w != e.Name {
				set[pair{w, e.Name}] = true
			}
		}
	}
	for p := range set {
		allowed = append(allowed, p)
	}
	slices.SortFunc(allowed, func(a, b pair) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to)) })
	both = map[pair]bool{}
	for _, p := range allowed {
		if set[pair{p.to, p.from}] {
			both[p] = true
		}
	}
	return allowed, both
}

func (f Firewall) sorted() []Endpoint {
	eps := slices.Clone(f.Endpoints)
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Name, b.Name) })
	return eps
}

// tables builds corral's two tables.
//
// ip corral (routed traffic; the ip family has connection tracking):
//
//   - prerouting, output (nat): a published port on any local address
//     is forwarded to its service, from outside and from the supervisor
//     itself (there on any address but loopback's);
//   - postrouting (nat): what leaves the bridge subnet through another
//     interface is masqueraded to that interface's address; a service
//     reaching another through a published port (hairpin) is
//     masqueraded to the gateway, so the answer comes back the same way;
//   - forward: isolated services go nowhere; into the bridge only
//     answers and published ports; an uplink whose forwarding corral
//     turned on (guardSet) forwards to the bridge only;
//   - input: isolated services cannot reach the supervisor.
//
// bridge corral (frames between the bridge's ports, without
// br_netfilter):
//
//   - prerouting: a service sends IPv4 and ARP from its own address
//     only, nothing else: no spoofing, no IPv6 between services;
//   - input: no routing from one service to another through the
//     gateway, around the policy below;
//   - forward: ARP, and what the policy allows; answers in the other
//     direction (chain reply, without connection tracking: TCP that is
//     not a new connection, UDP to an exchange the other side opened,
//     ICMP answers and errors); everything else between services is
//     dropped.
//
// Only frames from corral's own ports (named crl*) are filtered in the
// bridge family, and only traffic to or from the bridge in the ip
// family, so other interfaces of the supervisor are left alone.
func (f Firewall) tables() []table {
	br := f.Bridge.Name
	subnet := f.Bridge.Subnet.Masked()
	gw := f.Bridge.Gateway()
	eps := f.sorted()

	ip := table{family: familyIP, sets: []set{{name: guardSet, key: keyIfName}}}
	var dnat, dnatOut []rule
	anyPorts := false
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	for _, e := range eps {
		for _, p := range e.Ports {
			anyPorts = true
			match := []cond{fibLocal{}, l4proto{p.Proto}, portIs{dst: true, proto: p.Proto, port: p.Host}}
			dnat = append(dnat, rule{conds: match, act: dnatTo{e.Addr, p.Container}})
			// Not to 127.0.0.1: a packet from loopback may not leave on
			// the bridge unless route_localnet is on there, which would also
			// let services reach the supervisor's loopback-only listeners.
			out := append([]cond{ipAddr{dst: true, not: true, p: loopback}}, match...)
			dnatOut = append(dnatOut, rule{conds: out, act: dnatTo{e.Addr, p.Container}})
		}
	}
	var post []rule
	if anyPorts {
		post = append(post, rule{conds: []cond{ifName{out: true, name: br}, ipAddr{p: subnet}, ipAddr{dst: true, p: subnet}, ctDNAT{}}, act: masquerade{}})
	}
	post = append(post, rule{conds: []cond{ifName{out: true, not: true, name: br}, ipAddr{p: subnet}}, act: masquerade{}})
	var fwd, in []rule
	for _, e := range eps {
		if !e.Isolated {
			continue
		}
		a := netip.PrefixFrom(e.Addr, 32)
		fwd = append(fwd,
			rule{conds: []cond{ifName{name: br}, ipAddr{p: a}, ifName{out: true, not: true, name: br}}, act: verdict("drop")},
			rule{conds: []cond{ifName{name: br}, ipAddr{p: a}, ctDNAT{}}, act: verdict("drop")},
		)
		if len(in) == 0 {
			in = append(in, rule{conds: []cond{ifName{name: br}, ctState{}}, act: verdict("accept")})
		}
		if e.Host {
			in = append(in, rule{conds: []cond{ifName{name: br}, ipAddr{p: a}, ipAddr{dst: true, p: netip.PrefixFrom(gw, 32)}}, act: verdict("accept")})
		}
		in = append(in, rule{conds: []cond{ifName{name: br}, ipAddr{p: a}}, act: verdict("drop")})
	}
	inward := []cond{ifName{not: true, name: br}, ifName{out: true, name: br}}
	fwd = append(fwd,
		rule{conds: append(slices.Clone(inward), ctState{}), act: verdict("accept")},
		rule{conds: append(slices.Clone(inward), ctDNAT{}), act: verdict("accept")},
		rule{conds: inward, act: verdict("drop")},
		rule{conds: []cond{inSet{set: guardSet}, ifName{out: true, not: true, name: br}}, act: verdict("drop")},
	)
	ip.chains = []chain{
		{name: "prerouting", base: &baseChain{typ: "nat", hook: "prerouting", prio: -100}, rules: dnat},
		{name: "output", base: &baseChain{typ: "nat", hook: "output", prio: -100}, rules: dnatOut},
		{name: "postrouting", base: &baseChain{typ: "nat", hook: "postrouting", prio: 100}, rules: post},
		{name: "forward", base: &baseChain{typ: "filter", hook: "forward", prio: 0}, rules: fwd},
		{name: "input", base: &baseChain{typ: "filter", hook: "input", prio: 0}, rules: in},
	}

	ours := ifName{name: hostIfPrefix, prefix: true}
	bt := table{family: familyBridge, sets: []set{{name: udpFlowSet, key: keyUDPFlow, timeout: udpFlowTimeout}}}
	var pre []rule
	for _, e := range eps {
		port := ifName{name: HostIfName(e.Name)}
		pre = append(pre,
			rule{conds: []cond{port, etherType{etherIPv4}, ipAddr{p: netip.PrefixFrom(e.Addr, 32)}}, act: verdict("accept")},
			rule{conds: []cond{port, etherType{etherARP}, arpSAddr{e.Addr}}, act: verdict("accept")},
		)
	}
	pre = append(pre, rule{conds: []cond{ours}, act: verdict("drop")})
	binput := []rule{{conds: []cond{ours, etherType{etherIPv4}, ipAddr{dst: true, p: subnet}, ipAddr{dst: true, not: true, p: netip.PrefixFrom(gw, 32)}}, act: verdict("drop")}}
	bfwd := []rule{{conds: []cond{ours, etherType{etherARP}}, act: verdict("accept")}}
	allowed, both := f.pairs()
	var replies []pair
	for _, p := range allowed {
		dir := []cond{ifName{name: HostIfName(p.from)}, ifName{out: true, name: HostIfName(p.to)}}
		if !both[p] {
			bfwd = append(bfwd, rule{conds: append(slices.Clone(dir), l4proto{UDP}), act: updateFlow{}})
			replies = append(replies, pair{p.to, p.from})
		}
		bfwd = append(bfwd, rule{conds: dir, act: verdict("accept")})
	}
	slices.SortFunc(replies, func(a, b pair) int { return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to)) })
	for _, p := range replies {
		bfwd = append(bfwd, rule{conds: []cond{ifName{name: HostIfName(p.from)}, ifName{out: true, name: HostIfName(p.to)}}, act: jump{replyChain}})
	}
	bfwd = append(bfwd, rule{conds: []cond{ours}, act: verdict("drop")})
	reply := []rule{
		{conds: []cond{l4proto{TCP}, tcpNotNew{}}, act: verdict("accept")},
		{conds: []cond{l4proto{UDP}, udpFlow{}}, act: verdict("accept")},
	}
	for _, t := range icmpAnswers {
		reply = append(reply, rule{conds: []cond{l4proto{icmpProto}, icmpType{t}}, act: verdict("accept")})
	}
	reply = append(reply, rule{act: verdict("drop")})
	bt.chains = []chain{
		{name: "prerouting", base: &baseChain{typ: "filter", hook: "prerouting", prio: -200}, rules: pre},
		{name: "input", base: &baseChain{typ: "filter", hook: "input", prio: 0}, rules: binput},
		{name: "forward", base: &baseChain{typ: "filter", hook: "forward", prio: 0}, rules: bfwd},
		{name: replyChain, rules: reply},
	}
	return []table{ip, bt}
}

// String renders the tables in nft's syntax, as `nft list ruleset` would
// show them (without handles and counters).
func (f Firewall) String() string {
	var b strings.Builder
	for i, t := range f.tables() {
		if i > 0 {
			b.WriteByte('\n')
		}
		t.write(&b)
	}
	return b.String()
}

// The model the tables are made of.

type family uint8

const (
	familyIP family = iota
	familyBridge
)

func (f family) String() string { return [...]string{"ip", "bridge"}[f] }

type table struct {
	family family
	sets   []set
	chains []chain
}

type setKey uint8

const (
	keyIfName  setKey = iota // an interface name
	keyUDPFlow               // ip saddr . udp sport . ip daddr . udp dport
)

type set struct {
	name    string
	key     setKey
	timeout time.Duration // > 0: elements added by the rules, expiring
}

type chain struct {
	name  string
	base  *baseChain // nil: a regular chain, reached by jump
	rules []rule
}

type baseChain struct {
	typ  string // "filter" or "nat"
	hook string // "prerouting", "input", "forward", "output", "postrouting"
	prio int32
}

// rule is "every cond holds" -> act.
type rule struct {
	conds []cond
	act   action
}

// cond is one match of a rule; see firewall_linux.go for what each
// loads and compares.
type cond interface{ text() string }

// action is what a rule does when it matches.
type action interface{ text() string }

// Ethernet types and protocol numbers the rules match.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	icmpProto = Proto(255) // only for l4proto; Port never uses it
)

// icmpAnswers are the ICMP types a service may send back to one that
// connected to it: echo-reply, destination-unreachable, time-exceeded,
// parameter-problem.
var icmpAnswers = []uint8{0, 3, 11, 12}

var icmpNames = map[uint8]string{0: "echo-reply", 3: "destination-unreachable", 11: "time-exceeded", 12: "parameter-problem"}

// ifName matches the input (or output) interface by name, or by a
// prefix ("crl*").
type ifName struct {
	out, not, prefix bool
	name             string
}

func (c ifName) text() string {
	s := "iifname "
	if c.out {
		s = "oifname "
	}
	if c.not {
		s += "!= "
	}
	if c.prefix {
		return s + `"` + c.name + `*"`
	}
	return s + `"` + c.name + `"`
}

// inSet matches the input interface's name against a set of names.
type inSet struct{ set string }

func (c inSet) text() string { return "iifname @" + c.set }

type etherType struct{ t uint16 }

func (c etherType) text() string {
	if c.t == etherARP {
		return "ether type arp"
	}
	return "ether type ip"
}

// ipAddr matches the IPv4 source (or destination) against an address
// (a /32) or a prefix.
type ipAddr struct {
	dst, not bool
	p        netip.Prefix
}

func (c ipAddr) text() string {
	s := "ip saddr "
	if c.dst {
		s = "ip daddr "
	}
	if c.not {
		s += "!= "
	}
	if c.p.IsSingleIP() {
		return s + c.p.Addr().String()
	}
	return s + c.p.String()
}

// arpSAddr matches the sender IPv4 address of an ARP packet.
type arpSAddr struct{ a netip.Addr }

func (c arpSAddr) text() string { return "arp saddr ip " + c.a.String() }

type l4proto struct{ p Proto }

func (c l4proto) text() string {
	if c.p == icmpProto {
		return "meta l4proto icmp"
	}
	return "meta l4proto " + c.p.String()
}

// portIs matches a TCP or UDP port; it must follow an l4proto of the
// same protocol.
type portIs struct {
	dst   bool
	proto Proto
	port  uint16
}

func (c portIs) text() string {
	dir := " sport "
	if c.dst {
		dir = " dport "
	}
	return c.proto.String() + dir + fmt.Sprint(c.port)
}

// tcpNotNew matches TCP segments that do not open a connection: every
// one but a SYN without ACK.
type tcpNotNew struct{}

func (tcpNotNew) text() string { return "tcp flags & (syn | ack) != syn" }

type icmpType struct{ t uint8 }

func (c icmpType) text() string { return "icmp type " + icmpNames[c.t] }

// ctState matches connections that are established or related.
type ctState struct{}

func (ctState) text() string { return "ct state established,related" }

// ctDNAT matches connections whose destination was translated.
type ctDNAT struct{}

func (ctDNAT) text() string { return "ct status dnat" }

// fibLocal matches packets for one of the supervisor's own addresses.
type fibLocal struct{}

func (fibLocal) text() string { return "fib daddr type local" }

// udpFlow matches a UDP datagram that answers an exchange in udpFlowSet:
// its destination is the exchange's source.
type udpFlow struct{}

func (udpFlow) text() string {
	return "ip daddr . udp dport . ip saddr . udp sport @" + udpFlowSet
}

type verdict string // "accept" or "drop"

func (v verdict) text() string { return string(v) }

type jump struct{ chain string }

func (j jump) text() string { return "jump " + j.chain }

type dnatTo struct {
	addr netip.Addr
	port uint16
}

func (d dnatTo) text() string { return fmt.Sprintf("dnat to %s:%d", d.addr, d.port) }

type masquerade struct{}

func (masquerade) text() string { return "masquerade" }

// updateFlow records (or refreshes) the datagram's exchange in
// udpFlowSet; the rule then goes on to the next.
type updateFlow struct{}

func (updateFlow) text() string {
	return "update @" + udpFlowSet + " { ip saddr . udp sport . ip daddr . udp dport }"
}

func (t table) write(b *strings.Builder) {
	fmt.Fprintf(b, "table %s %s {\n", t.family, TableName)
	for _, s := range t.sets {
		fmt.Fprintf(b, "\tset %s {\n", s.name)
		switch s.key {
		case keyIfName:
			b.WriteString("\t\ttype ifname\n")
		case keyUDPFlow:
			b.WriteString("\t\ttype ipv4_addr . inet_service . ipv4_addr . inet_service\n")
		}
		if s.timeout > 0 {
			fmt.Fprintf(b, "\t\tflags dynamic,timeout\n\t\ttimeout %s\n", s.timeout)
		}
		b.WriteString("\t}\n")
	}
	for _, c := range t.chains {
		fmt.Fprintf(b, "\tchain %s {\n", c.name)
		if c.base != nil {
			fmt.Fprintf(b, "\t\ttype %s hook %s priority %d; policy accept;\n", c.base.typ, c.base.hook, c.base.prio)
		}
		for _, r := range c.rules {
			b.WriteString("\t\t")
			for _, m := range r.conds {
				b.WriteString(m.text())
				b.WriteByte(' ')
			}
			b.WriteString(r.act.text())
			b.WriteByte('\n')
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
}
