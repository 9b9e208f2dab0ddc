// Package net (imported as cnet everywhere, because it shadows the standard
// library's net) gives services their network: a bridge in the supervisor's
// network namespace, and per service a veth pair whose peer is created
// directly inside the service's network namespace, an address, a default
// route and lo, all over rtnetlink; a firewall with NAT, published ports
// and the policy between services, over nftables' netlink; and the
// containers' /etc/hosts and /etc/resolv.conf (files.go).
//
// # Ordering
//
// The parent configures everything after clone and before it lets the child
// stage go on, so the service's first instruction already sees its network.
// The child does no netlink work. Teardown is the kernel's: when the last
// process of a service dies its network namespace goes, and the veth pair
// with it.
//
// Setup must run before any Attach: it creates the bridge (kind "bridge",
// with a fixed MAC so the gateway's MAC never changes under the services'
// ARP caches), adds the gateway address and sets it up, and is idempotent.
// Attach then makes, in this order:
//
//  1. one RTM_NEWLINK on the supervisor's socket: the veth pair, host end
//     enslaved to the bridge and up, peer "eth0" created inside the
//     service's namespace (IFLA_NET_NS_FD on the peer);
//  2. on a socket opened inside that namespace: lo up, the address on
//     eth0, eth0 up, the default route via the gateway (last: the kernel
//     only accepts a gateway a connected route already reaches).
//
// The peer cannot be brought up in step 1: the kernel applies the peer's
// flags before it has linked the two ends, and the request fails with
// ENOTCONN.
//
// # Teardown and restarts
//
// Dropping a namespace is cheap for the caller (the kernel finishes in a
// workqueue), but the host end lingers until then: about a millisecond for
// an idle namespace, tens of milliseconds (once over 100 ms) for one that
// dies right after being configured, which is exactly a service crashing
// at start. A restart that finds its host end still there deletes it and
// retries once; that synchronous delete costs 15-40 ms, against ~1.3 ms for
// a normal Attach. Detach is for cleanup paths only, for the same reason.
//
// # Firewall, NAT and published ports
//
// Setup installs corral's two nftables tables, both named "corral": "ip
// corral" for routed traffic (NAT to the outside, published ports,
// isolated services) and "bridge corral" for frames between the bridge's
// ports (the policy between services, anti-spoofing), which works without
// br_netfilter. Firewall.tables (firewall.go) is the whole rule set as
// plain data and its doc comment the design; Firewall.String prints it in
// nft's syntax. The tables name interfaces and addresses, which come from
// the configuration and never change while corral runs, so they are made
// once, in one transaction that first deletes what an earlier run left,
// and never touched on a start or stop: a start costs no nftables work.
//
// The bridge family has no connection tracking unless the kernel has
// nf_conntrack_bridge, which corral does not require. So the answers to
// a connection one service opened to another are let through statelessly
// (chain reply): TCP segments other than a SYN, UDP datagrams that answer
// an exchange the first one opened (a dynamic set of the exchange's
// addresses and ports, refreshed by every datagram, expiring after a
// minute) and ICMP answers and errors. Routed traffic is tracked.
//
// # Forwarding
//
// IPv4 decides whether to forward per input interface
// (conf/IF/forwarding). Forward turns it on, while at least one service
// that reaches beyond the bridge runs, for the bridge and for the uplink
// (the interface of the default route at that moment): services' packets
// come in on the bridge, their answers and published ports on the uplink.
// net.ipv4.ip_forward is conf/all/forwarding and would switch every
// interface: corral never writes it. An uplink whose forwarding was off
// goes into the guard set, whose rule forwards what arrives there to the
// bridge only, so the appliance does not start routing for its LAN. The
// values from before are kept in a state file and put back by the last
// release, by Remove, or by the next Setup after a crash. The uplink's MTU
// (at Setup) is the bridge's and every veth's.
//
// # Cleaning up after a crash
//
// Setup restores the sysctls a killed run left, deletes every veth named
// crl* (corral's prefix; at Setup none of its services runs), and
// replaces the tables whole. Together with the cgroup subtree that the
// supervisor empties first, a restart finds exactly one set of
// interfaces and rules.
//
// # Threads and namespaces
//
// This package never changes a thread's namespace itself. Sockets inside a
// service's namespace come from mdlayher/netlink's Config.NetNS, which
// enters the namespace on a locked thread, creates the socket and returns
// the thread to its own namespace before unlocking it. A socket stays in
// the namespace it was created in, whichever thread uses it later. Setup,
// LoopbackUp(-1) and LinkExists use the calling thread's namespace. The
// nftables socket is opened once, by Setup (a non-lasting one would be
// reopened on every batch, in whatever namespace the caller's thread is
// in then). /proc/sys/net shows the namespace of the thread that opens
// the file, so sysctls are read and written on a locked thread that joins
// the namespace Setup ran in and then goes back (inNetNS).
//
// Attach may be called by many services' goroutines at once: the one
// supervisor-side socket serves one request at a time, the in-namespace
// work runs on per-call sockets without the lock.
//
// # Errors
//
// Errors say what was being done to what ("add 10.88.0.5/24 to eth0 in
// netns of crlweb: ...") and keep the kernel's errno for errors.Is
// (unix.EEXIST, unix.EPERM; EOPNOTSUPP, a kernel without bridge or veth
// support, also matches errors.ErrUnsupported). Sentinels are in errors.go.
// A failed Attach deletes what it created.
//
// # Testing
//
// Request building and the call sequences of Setup and Attach are unit
// tested against nltest fakes that decode every request from its bytes
// (fake_linux_test.go). Tests behind the integration build tag run as root
// in namespaces made by internal/testutil and check the result from inside
// the service's namespace, send real traffic across the bridge and time
// Attach against the same work done with ip(8) (BenchmarkAttach).
package net
