package supervisor

import (
	"net/netip"
	"reflect"
	"testing"

	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor/config"
)

func TestNetworkPlan(t *testing.T) {
	bridge := cnet.BridgeConfig{Name: "corral0", Subnet: netip.MustParsePrefix("10.88.0.0/24")}
	addr := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	svc := func(name string, net cnet.Spec, requires, after []string) *config.Service {
		return &config.Service{Name: name, Net: net, Requires: requires, After: after}
	}
	web := cnet.Spec{Mode: cnet.ModeBridge, Address: addr("10.88.0.10"), Ports: []cnet.Port{{Host: 8080, Container: 80, Proto: cnet.TCP}}, AllowFrom: []string{"lab"}}
	cfg := &config.Config{
		Global: config.Global{Network: bridge},
		Services: []*config.Service{
			svc("app", cnet.Spec{Mode: cnet.ModeBridge, Address: addr("10.88.0.20")}, []string{"web", "db"}, []string{"web", "gone"}),
			svc("db", cnet.Spec{Mode: cnet.ModeHost}, nil, nil),
			svc("lab", cnet.Spec{Mode: cnet.ModeBridge, Address: addr("10.88.0.30"), Isolated: true}, []string{"db"}, nil),
			svc("quiet", cnet.Spec{Mode: cnet.ModeNone}, nil, nil),
			svc("web", web, nil, nil),
		},
	}
	fw, hosts := NetworkPlan(cfg)
	want := cnet.Firewall{Bridge: bridge, Endpoints: []cnet.Endpoint{
		// web twice (requires and after) is one peer; db is host-mode,
		// gone is disabled.
		{Name: "app", Addr: addr("10.88.0.20"), Peers: []string{"web"}, Host: true},
		{Name: "lab", Addr: addr("10.88.0.30"), Isolated: true, Host: true},
		{Name: "web", Addr: addr("10.88.0.10"), Ports: web.Ports, AllowFrom: []string{"lab"}},
	}}
	if !reflect.DeepEqual(fw, want) {
		t.Errorf("firewall\n got %+v\nwant %+v", fw, want)
	}
	wantHosts := []cnet.Host{{Name: "app", Addr: addr("10.88.0.20")}, {Name: "db", Addr: addr("10.88.0.1")}, {Name: "lab", Addr: addr("10.88.0.30")}, {Name: "web", Addr: addr("10.88.0.10")}}
	if !reflect.DeepEqual(hosts, wantHosts) {
		t.Errorf("hosts\n got %v\nwant %v", hosts, wantHosts)
	}
}
