package net

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Name service for containers: every container gets its own /etc/hosts
// and /etc/resolv.conf, rendered by the functions below and bound
// read-only over the root's (which is read-only too). Addresses never
// change while corral runs (they come from the configuration, see
// config's assignAddresses), so a file written when a service starts
// stays right for as long as that instance runs.

// Host is one name in a hosts file.
type Host struct {
	Name string
	Addr netip.Addr
}

// HostsFile renders /etc/hosts for one container: localhost, the
// container's own name (and hostname, when it differs) on self, then
// every other service in hosts, sorted by name. self is the service's
// bridge address, or 127.0.1.1 (Debian's convention) for a service
// without one.
func HostsFile(name, hostname string, self netip.Addr, hosts []Host) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# /etc/hosts of %s, written by corral\n", name)
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if !self.IsValid() {
		self = netip.AddrFrom4([4]byte{127, 0, 1, 1})
	}
	own := name
	if hostname != "" && hostname != name {
		own += " " + hostname
	}
	fmt.Fprintf(&b, "%s\t%s\n", self, own)
	hosts = slices.Clone(hosts)
	slices.SortFunc(hosts, func(a, b Host) int { return cmp.Compare(a.Name, b.Name) })
	for _, h := range hosts {
		if h.Name != name && h.Addr.IsValid() {
			fmt.Fprintf(&b, "%s\t%s\n", h.Addr, h.Name)
		}
	}
	return b.Bytes()
}

// ResolvConf renders /etc/resolv.conf for a container from the
// supervisor's own (host) and the configured nameservers (servers; none
// means host's). search, domain and options lines of host are kept. With
// ownNetwork (a service in its own network namespace), nameservers on
// loopback are dropped: a container's 127.0.0.1 is its own, not the
// supervisor's resolver. dropped lists them, so the caller can say why a
// service has no nameserver.
func ResolvConf(host []byte, servers []netip.Addr, ownNetwork bool) (file []byte, dropped []netip.Addr) {
	var b bytes.Buffer
	b.WriteString("# /etc/resolv.conf written by corral\n")
	var hostServers []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		if len(f) == 0 || line[0] == '#' || line[0] == ';' {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				continue
			}
			if ownNetwork && a.Unmap().IsLoopback() {
				dropped = append(dropped, a)
				continue
			}
			hostServers = append(hostServers, a)
		case "search", "domain", "options":
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	if len(servers) > 0 {
		hostServers, dropped = servers, nil
	}
	for _, a := range hostServers {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	return b.Bytes(), dropped
}
