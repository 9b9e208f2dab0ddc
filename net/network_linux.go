package net

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Network is the bridge network in the caller's network namespace (the
// supervisor's). It holds one rtnetlink socket in that namespace, opened by
// Setup, and the bridge's index.
//
// Attach, Detach and Remove may be called from many goroutines at once: the
// supervisor-side socket is used by one request at a time (mu), while the
// per-service work inside each service's namespace runs on its own socket
// without holding mu.
type Network struct {
	cfg  BridgeConfig
	dial dialer

	// index and mtu are the bridge's, read once by Setup: corral owns the
	// bridge, and re-reading them would cost every Attach a round trip.
	// A bridge deleted behind our back makes Attach fail with ENODEV.
	// mtu is the uplink's when Setup found one.
	index, mtu uint32

	created bool // Setup made the bridge (a failed Setup deletes it)

	mu     sync.Mutex // guards c, nft and closed
	c      conn
	nft    nftConn // nil without a firewall
	closed bool

	// nsFD is the supervisor's network namespace, for the sysctls.
	nsFD int
	sys  *sysctls

	fwdMu   sync.Mutex // guards the fields below
	holders int        // services that need forwarding (Forward)
	uplinks []string   // uplinks whose forwarding corral turned on
	guarded []string   // those of them in the guard set
}

// Options are what Setup does besides the bridge.
type Options struct {
	// Firewall, when not nil, replaces corral's nftables tables (policy,
	// NAT, ports); Remove deletes them again.
	Firewall *Firewall
	// StateFile records the sysctls Forward changed, with their values
	// from before, so that a Setup after a crash puts them back. "" keeps
	// them in memory only.
	StateFile string
}

// SetupReport says what Setup found and cleaned up, for the log.
type SetupReport struct {
	// Uplink is the interface of the default route ("" = none yet) and
	// MTU the MTU given to the bridge and every veth.
	Uplink string
	MTU    uint32
	// Stale are the veths of an earlier run that Setup deleted.
	Stale []string
	// Restored are sysctls an earlier run changed and did not restore.
	Restored []string
}

// Setup makes sure the bridge cfg.Name exists in the caller's network
// namespace, has the gateway address (cfg.Gateway(), prefix length of
// cfg.Subnet) and is up, and returns a Network for attaching services to it.
//
// It also cleans up after an earlier run that was killed, in this order:
// sysctls that run changed are put back (o.StateFile), veths named like
// corral's (crl*) are deleted, and the firewall is replaced whole, in one
// nftables transaction. The bridge and the veths get the MTU of the
// uplink (the interface of the default route), when there is one.
//
// Setup is idempotent: a bridge left by an earlier run (a supervisor that
// is not PID 1 and was restarted) is reused, an address that is already
// there is kept. A link of that name that is not a bridge is an error
// (ErrNotBridge); Setup never reconfigures someone else's interface. A
// failed Setup deletes the bridge if it made it.
//
// The sockets are bound to the namespace of the calling thread at this
// moment; call Setup from the supervisor's own namespace.
func Setup(cfg BridgeConfig, o Options) (n *Network, rep SetupReport, err error) {
	if err := checkBridgeConfig(cfg); err != nil {
		return nil, rep, err
	}
	c, err := dialRoute(0)
	if err != nil {
		return nil, rep, fmt.Errorf("open netlink for bridge %s: %w", cfg.Name, err)
	}
	nsFD, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = c.Close()
		return nil, rep, fmt.Errorf("open the supervisor's netns: %w", err)
	}
	sys := &sysctls{nsFD: nsFD, file: o.StateFile}
	fail := func(err error) (*Network, SetupReport, error) {
		_ = c.Close()
		_ = unix.Close(nsFD)
		return nil, rep, err
	}
	// Before anything else: an uplink's forwarding left on by a killed run
	// must not be taken for the value from before corral.
	if rep.Restored, err = sys.recoverLeftovers(); err != nil {
		return fail(err)
	}
	n, err = setup(c, dialRoute, cfg)
	if err != nil {
		return fail(err)
	}
	n.nsFD, n.sys = nsFD, sys
	undo := func(err error) (*Network, SetupReport, error) {
		if n.created {
			_, _ = do(c, delLinkReq(n.index))
		}
		if n.nft != nil {
			_ = n.nft.CloseLasting()
		}
		return fail(err)
	}
	up, err := findUplink(c)
	if err != nil {
		return undo(err)
	}
	rep.Uplink = up.name
	if up.mtu != 0 && up.mtu != n.mtu {
		if _, err := do(c, setMTUReq(n.index, up.mtu)); err != nil {
			return undo(fmt.Errorf("set MTU %d (of uplink %s) on bridge %s: %w", up.mtu, up.name, cfg.Name, err))
		}
		n.mtu = up.mtu
	}
	rep.MTU = n.mtu
	if rep.Stale, err = removeStaleVeths(c); err != nil {
		return undo(err)
	}
	if o.Firewall != nil {
		fw := *o.Firewall
		fw.Bridge = cfg
		if n.nft, err = dialNFT(); err != nil {
			return undo(fmt.Errorf("open nftables netlink: %w", err))
		}
		if err := installFirewall(n.nft, fw); err != nil {
			// The transaction changed nothing; an earlier run's tables
			// may still be there, and must not stay half-relevant.
			if rerr := removeFirewall(n.nft); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
			}
			return undo(err)
		}
	}
	return n, rep, nil
}

// removeStaleVeths deletes every veth whose name has corral's prefix: at
// Setup none of corral's services runs, so they are leftovers of an
// earlier run (whose namespaces may still be alive, kept by processes
// that outlived it). Each is deleted by index; one that is gone meanwhile
// is fine.
func removeStaleVeths(c conn) ([]string, error) {
	msgs, err := do(c, dumpLinksReq())
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	ls, err := links(msgs)
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, l := range ls {
		if l.Attributes == nil || !strings.HasPrefix(l.Attributes.Name, hostIfPrefix) || linkKind(l) != "veth" {
			continue
		}
		if _, err := do(c, delLinkReq(l.Index)); err != nil && !errors.Is(err, unix.ENODEV) {
			return stale, fmt.Errorf("delete stale veth %s: %w", l.Attributes.Name, err)
		}
		stale = append(stale, l.Attributes.Name)
	}
	return stale, nil
}

func checkBridgeConfig(cfg BridgeConfig) error {
	if !validIfName(cfg.Name) {
		return fmt.Errorf("set up bridge %q: %w", cfg.Name, ErrBadName)
	}
	s := cfg.Subnet
	if !s.IsValid() || (s.Addr().Is4() && s.Bits() > 30) || (s.Addr().Is6() && s.Bits() > 126) {
		return fmt.Errorf("set up bridge %s: subnet %s has no room for a gateway and services", cfg.Name, s)
	}
	return nil
}

// setup is Setup on an open conn; the order matters only in that the bridge
// must exist (and be known to be a bridge) before anything is changed on it.
func setup(c conn, d dialer, cfg BridgeConfig) (*Network, error) {
	lm, err := getLink(c, cfg.Name)
	created := false
	if errors.Is(err, unix.ENODEV) {
		err, created = nil, true
		if _, cerr := do(c, newBridgeReq(cfg.Name)); cerr != nil && !errors.Is(cerr, unix.EEXIST) {
			// EEXIST: someone created it between our look-up and now;
			// the look-up below decides whether it is usable.
			return nil, fmt.Errorf("create bridge %s: %w", cfg.Name, cerr)
		}
		lm, err = getLink(c, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("look up bridge %s: %w", cfg.Name, err)
	}
	if kind := linkKind(lm); kind != "bridge" {
		return nil, fmt.Errorf("set up bridge %s: %w (kind %q)", cfg.Name, ErrNotBridge, kind)
	}

	gw := netip.PrefixFrom(cfg.Gateway(), cfg.Subnet.Bits())
	if _, err := do(c, newAddrReq(lm.Index, gw)); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("add %s to bridge %s: %w", gw, cfg.Name, err)
	}
	if lm.Flags&unix.IFF_UP == 0 {
		if _, err := do(c, linkUpReq(lm.Index)); err != nil {
			return nil, fmt.Errorf("set bridge %s up: %w", cfg.Name, err)
		}
	}
	n := &Network{cfg: cfg, dial: d, index: lm.Index, mtu: 1500, c: c, created: created}
	if lm.Attributes != nil && lm.Attributes.MTU != 0 {
		n.mtu = lm.Attributes.MTU
	}
	return n, nil
}

// exec sends one request on the supervisor-side socket.
func (n *Network) exec(r request) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	_, err := do(n.c, r)
	return err
}

func (n *Network) getLink(name string) (linkInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return linkInfo{}, ErrClosed
	}
	lm, err := getLink(n.c, name)
	if err != nil {
		return linkInfo{}, err
	}
	return linkInfo{index: lm.Index, kind: linkKind(lm)}, nil
}

// linkInfo is the little this package reads back about a link.
type linkInfo struct {
	index uint32
	kind  string
}

// Attach connects the network namespace nsFD to the bridge: a veth pair
// whose host end hostIf hangs off the bridge and whose peer is eth0 inside
// nsFD with address addr (prefix length of the bridge subnet), lo up, and a
// default route via the gateway.
//
// Ordering: the pair is created in one RTM_NEWLINK on the supervisor's
// socket (host end enslaved and up, peer created directly inside nsFD, both
// with the bridge's MTU as Setup found it); only then does the peer exist
// in nsFD, so the rest runs on a socket opened inside nsFD: lo up, eth0
// address, eth0 up, default route. The route must come last: the kernel
// accepts a gateway only when a connected route reaches it, and that route
// appears once the address is on an interface that is up. The caller must
// keep nsFD open until Attach returns, and must not let the child stage go
// on before, so that the service starts with its network ready.
//
// If hostIf already exists it is a veth left by a service that exited: the
// kernel tears a dead namespace down asynchronously and the pair goes with
// it, a little later. That veth is deleted and the create retried once.
//
// Any failure after the pair exists deletes hostIf again, so a failed
// Attach leaves nothing behind; the error says what was being done, to what.
func (n *Network) Attach(nsFD int, hostIf string, addr netip.Addr) error {
	if !validIfName(hostIf) {
		return fmt.Errorf("attach %q: %w", hostIf, ErrBadName)
	}
	addr = addr.Unmap()
	if err := checkAddr(n.cfg, addr); err != nil {
		return fmt.Errorf("attach %s: %w", hostIf, err)
	}
	fd, release, err := netnsFD(nsFD)
	if err != nil {
		return fmt.Errorf("attach %s: %w", hostIf, err)
	}
	defer release()

	req := newVethReq(hostIf, n.index, n.mtu, fd)
	err = n.exec(req)
	if errors.Is(err, unix.EEXIST) {
		if err := n.removeStale(hostIf); err != nil {
			return err
		}
		err = n.exec(req)
	}
	if err != nil {
		return fmt.Errorf("create veth %s with peer %s in netns fd %d on bridge %s: %w",
			hostIf, peerName, nsFD, n.cfg.Name, err)
	}

	if err := n.configurePeer(fd, hostIf, addr); err != nil {
		if derr := n.Detach(hostIf); derr != nil {
			return errors.Join(err, fmt.Errorf("undo: %w", derr))
		}
		return err
	}
	return nil
}

// removeStale deletes hostIf if it is a veth. Anything else of that name is
// not ours and is left alone. A link that vanished meanwhile is fine: the
// retry decides.
func (n *Network) removeStale(hostIf string) error {
	li, err := n.getLink(hostIf)
	if errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stale veth %s: %w", hostIf, err)
	}
	if li.kind != "veth" {
		return fmt.Errorf("replace stale veth %s: link exists and is not a veth (kind %q): %w", hostIf, li.kind, unix.EEXIST)
	}
	// By index, so a link created under the same name meanwhile survives.
	if err := n.exec(delLinkReq(li.index)); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete stale veth %s: %w", hostIf, err)
	}
	return nil
}

// configurePeer does the in-namespace half of Attach on a socket opened
// inside fd; that socket is the service's alone, so no lock is needed.
func (n *Network) configurePeer(fd int, hostIf string, addr netip.Addr) error {
	c, err := n.dial(fd)
	if err != nil {
		return fmt.Errorf("open netlink in netns of %s: %w", hostIf, err)
	}
	defer c.Close()

	if _, err := do(c, linkUpReq(loopbackIndex)); err != nil {
		return fmt.Errorf("set lo up in netns of %s: %w", hostIf, err)
	}
	peer, err := getLink(c, peerName)
	if err != nil {
		return fmt.Errorf("look up %s in netns of %s: %w", peerName, hostIf, err)
	}
	p := netip.PrefixFrom(addr, n.cfg.Subnet.Bits())
	if _, err := do(c, newAddrReq(peer.Index, p)); err != nil {
		return fmt.Errorf("add %s to %s in netns of %s: %w", p, peerName, hostIf, err)
	}
	if peer.Flags&unix.IFF_UP == 0 {
		if _, err := do(c, linkUpReq(peer.Index)); err != nil {
			return fmt.Errorf("set %s up in netns of %s: %w", peerName, hostIf, err)
		}
	}
	gw := n.cfg.Gateway()
	if _, err := do(c, defaultRouteReq(peer.Index, gw)); err != nil {
		return fmt.Errorf("add default route via %s in netns of %s: %w", gw, hostIf, err)
	}
	return nil
}

// Detach deletes the host end hostIf (and with it the peer) if it still
// exists; a missing link is not an error. It is for cleanup paths: normally
// the service's namespace dies with its last process and the kernel removes
// the pair, which is much cheaper than deleting it here (no extra RCU wait
// on the supervisor's path).
func (n *Network) Detach(hostIf string) error {
	if !validIfName(hostIf) {
		return fmt.Errorf("detach %q: %w", hostIf, ErrBadName)
	}
	if err := n.exec(delLinkByNameReq(hostIf)); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete veth %s: %w", hostIf, err)
	}
	return nil
}

// Forward makes sure IPv4 forwarding is on for a service that reaches
// beyond the bridge (NAT, published ports), and returns the function that
// gives it back. Forwarding is turned on for the bridge and for the
// uplink (the interface of the default route, looked up at every call, so
// an uplink that came up after the first service still gets it), as both
// are input interfaces of forwarded traffic: the bridge for what services
// send, the uplink for the answers and for published ports. An uplink
// whose forwarding was off goes into the firewall's guard set, whose rule
// drops what it would forward anywhere but to the bridge. The last
// release puts every value back, and the guard set empty.
//
// net.ipv4.ip_forward (conf/all) is never written: it would switch every
// interface.
func (n *Network) Forward() (release func(), err error) {
	n.fwdMu.Lock()
	defer n.fwdMu.Unlock()
	if err := n.forwardOn(n.holders == 0); err != nil {
		if n.holders == 0 {
			if rerr := n.forwardOff(); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
			}
		}
		return nil, err
	}
	n.holders++
	var once sync.Once
	return func() {
		once.Do(func() {
			n.fwdMu.Lock()
			defer n.fwdMu.Unlock()
			if n.holders--; n.holders == 0 {
				_ = n.forwardOff()
			}
		})
	}, nil
}

// forwardOn turns forwarding on for the bridge (first) and for the
// current uplink, unless it already did that one.
func (n *Network) forwardOn(first bool) error {
	if n.sys == nil {
		return fmt.Errorf("forwarding for bridge %s: not made by Setup", n.cfg.Name)
	}
	var set []string
	if first {
		set = []string{forwardingPath(n.cfg.Name), "1"}
	}
	n.mu.Lock()
	var up uplink
	var err error
	if n.closed {
		err = ErrClosed
	} else {
		up, err = findUplink(n.c)
	}
	n.mu.Unlock()
	if err == nil && (up.name == "" || up.name == n.cfg.Name || slices.Contains(n.uplinks, up.name)) {
		// No new uplink: the bridge alone (services reach the supervisor).
		if len(set) > 0 {
			err = n.sys.set(set...)
		}
		return err
	}
	if err != nil {
		return err
	}
	was := ""
	err = inNetNS(n.nsFD, func() error {
		b, err := os.ReadFile(procSys + forwardingPath(up.name))
		was = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		return fmt.Errorf("read forwarding of uplink %s: %w", up.name, err)
	}
	if was == "0" && n.nft != nil {
		n.mu.Lock()
		err := guard(n.nft, up.name, true)
		n.mu.Unlock()
		if err != nil {
			return err
		}
		n.guarded = append(n.guarded, up.name)
	}
	n.uplinks = append(n.uplinks, up.name)
	return n.sys.set(append(set, forwardingPath(up.name), "1")...)
}

// forwardOff puts the forwarding sysctls back and empties the guard set:
// values first, so nothing is forwarded unguarded in between.
func (n *Network) forwardOff() error {
	var errs []error
	if n.sys != nil {
		errs = append(errs, n.sys.restore())
	}
	n.mu.Lock()
	for _, name := range n.guarded {
		if n.nft != nil && !n.closed {
			errs = append(errs, guard(n.nft, name, false))
		}
	}
	n.mu.Unlock()
	n.guarded, n.uplinks = nil, nil
	return errors.Join(errs...)
}

// Remove undoes Setup, for the shutdown of a supervisor that is not PID 1
// (PID 1's namespace dies with the machine): the sysctls Forward changed
// are put back, corral's nftables tables and the bridge are deleted. Veths
// still attached are released by the kernel, not deleted. Close the
// Network afterwards.
func (n *Network) Remove() error {
	var errs []error
	n.fwdMu.Lock()
	n.holders = 0
	if err := n.forwardOff(); err != nil {
		errs = append(errs, err)
	}
	n.fwdMu.Unlock()
	n.mu.Lock()
	if n.nft != nil && !n.closed {
		if err := removeFirewall(n.nft); err != nil {
			errs = append(errs, err)
		}
	}
	n.mu.Unlock()
	if err := n.exec(delLinkReq(n.index)); err != nil && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("delete bridge %s: %w", n.cfg.Name, err))
	}
	return errors.Join(errs...)
}

// Close closes the sockets; the bridge, the tables and the sysctls stay.
// Calls after Close return ErrClosed; Close itself is idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	if err := n.c.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close netlink for bridge %s: %w", n.cfg.Name, err))
	}
	if n.nft != nil {
		if err := n.nft.CloseLasting(); err != nil {
			errs = append(errs, fmt.Errorf("close nftables netlink: %w", err))
		}
	}
	if n.nsFD > 0 {
		_ = unix.Close(n.nsFD)
	}
	return errors.Join(errs...)
}

// checkAddr rejects service addresses that cannot work on the subnet.
func checkAddr(cfg BridgeConfig, addr netip.Addr) error {
	s := cfg.Subnet.Masked()
	switch {
	case !addr.IsValid():
		return fmt.Errorf("%w: none given", ErrBadAddress)
	case !s.Contains(addr):
		return fmt.Errorf("%w: %s outside bridge subnet %s", ErrBadAddress, addr, s)
	case addr == cfg.Gateway():
		return fmt.Errorf("%w: %s is the bridge's own", ErrBadAddress, addr)
	case addr == s.Addr():
		return fmt.Errorf("%w: %s is the network address of %s", ErrBadAddress, addr, s)
	}
	if brd, ok := broadcast(s); ok && addr == brd {
		return fmt.Errorf("%w: %s is the broadcast address of %s", ErrBadAddress, addr, s)
	}
	return nil
}

// netnsFD turns a caller's netns fd into one netlink.Config.NetNS accepts:
// there 0 means "the calling thread's namespace", so a namespace that really
// is fd 0 (PID 1 may start without stdin) is duplicated first.
func netnsFD(nsFD int) (fd int, release func(), err error) {
	switch {
	case nsFD < 0:
		return 0, nil, fmt.Errorf("netns fd %d: %w", nsFD, unix.EBADF)
	case nsFD > 0:
		return nsFD, func() {}, nil
	}
	fd, err = unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return 0, nil, fmt.Errorf("duplicate netns fd 0: %w", err)
	}
	return fd, func() { _ = unix.Close(fd) }, nil
}

// LoopbackUp brings lo up inside the network namespace nsFD (services with
// mode "none"), or in the calling thread's namespace when nsFD is -1 (PID 1
// in early boot). lo is ifindex 1 in every namespace, so this is a single
// request.
func LoopbackUp(nsFD int) error {
	return loopbackUp(dialRoute, nsFD)
}

func loopbackUp(d dialer, nsFD int) error {
	fd, release := 0, func() {}
	if nsFD != -1 {
		var err error
		if fd, release, err = netnsFD(nsFD); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	defer release()
	c, err := d(fd)
	if err != nil {
		return fmt.Errorf("open netlink in netns fd %d: %w", nsFD, err)
	}
	defer c.Close()
	if _, err := do(c, linkUpReq(loopbackIndex)); err != nil {
		return fmt.Errorf("set lo up in netns fd %d: %w", nsFD, err)
	}
	return nil
}

// LinkExists reports whether a link called name exists in the calling
// thread's network namespace. It opens a socket per call: it is for tests
// and leftover checks, not for hot paths.
func LinkExists(name string) (bool, error) {
	return linkExists(dialRoute, name)
}

func linkExists(d dialer, name string) (bool, error) {
	c, err := d(0)
	if err != nil {
		return false, fmt.Errorf("open netlink: %w", err)
	}
	defer c.Close()
	_, err = getLink(c, name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENODEV):
		return false, nil
	}
	return false, fmt.Errorf("look up link %s: %w", name, err)
}

// ErrNetworkBusy is LockNamespace's answer when another process holds it.
var ErrNetworkBusy = errors.New("another corral runs the network of this network namespace")

// LockNamespace claims the bridge network of the calling thread's network
// namespace for this process, until it exits or execs: a second corral
// there would take the first one's veths for leftovers of a crash and
// replace its tables. The lock is an abstract unix socket, whose names
// are per network namespace and which the kernel releases with its
// process; its descriptor stays open for that.
func LockNamespace() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network lock: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: "@corral-network"}); err != nil {
		_ = unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return ErrNetworkBusy
		}
		return fmt.Errorf("network lock: %w", err)
	}
	return nil
}
