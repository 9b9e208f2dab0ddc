package supervisor

import (
	"slices"

	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor/config"
)

// NetworkPlan turns the enabled services into what the network needs from
// the configuration as a whole: the firewall's endpoints (every bridged
// service, running or not, with its ports and who it may connect to) and
// the names every container's /etc/hosts lists.
//
// A service may connect to the services it requires or starts after and
// to those that name it in allow_from; only bridged ones get a rule (the
// supervisor's own network namespace, and with it every host-mode
// service, always reaches bridged services). An isolated service that
// depends on a host-mode service may still reach the supervisor's address
// on the bridge, where that service listens.
//
// The names: a bridged service at its address, a host-mode service at
// the bridge's own address (the gateway, a local address of the
// supervisor); a service in mode "none" is unreachable and left out.
func NetworkPlan(cfg *config.Config) (cnet.Firewall, []cnet.Host) {
	fw := cnet.Firewall{Bridge: cfg.Global.Network}
	var hosts []cnet.Host
	mode := map[string]cnet.Mode{}
	for _, s := range cfg.Services {
		mode[s.Name] = s.Net.Mode
	}
	for _, s := range cfg.Services {
		switch s.Net.Mode {
		case cnet.ModeHost:
			hosts = append(hosts, cnet.Host{Name: s.Name, Addr: cfg.Global.Network.Gateway()})
			continue
		case cnet.ModeNone:
			continue
		}
		hosts = append(hosts, cnet.Host{Name: s.Name, Addr: s.Net.Address})
		e := cnet.Endpoint{
			Name:      s.Name,
			Addr:      s.Net.Address,
			Ports:     slices.Clone(s.Net.Ports),
			AllowFrom: slices.Clone(s.Net.AllowFrom),
			Isolated:  s.Net.Isolated,
		}
		for _, d := range append(slices.Clone(s.Requires), s.After...) {
			switch m, ok := mode[d]; {
			case !ok: // disabled: it does not run
			case m == cnet.ModeBridge:
				if !slices.Contains(e.Peers, d) {
					e.Peers = append(e.Peers, d)
				}
			case m == cnet.ModeHost:
				e.Host = true
			}
		}
		fw.Endpoints = append(fw.Endpoints, e)
	}
	return fw, hosts
}
