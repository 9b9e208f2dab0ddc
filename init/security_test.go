package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor/config"
)

func TestSecurityReportExposure(t *testing.T) {
	tight := &config.Service{Name: "tight", Container: container.Spec{
		User:     "nobody",
		Limits:   container.Limits{MemoryMax: 16 << 20, PidsMax: 32, CPU: 0.5},
		Security: container.Security{NoNewPrivs: true, Seccomp: true},
		UserNS:   &container.IDMap{HostID: 100000, Size: 65536},
	}, Net: cnet.Spec{Mode: cnet.ModeNone}}
	loose := &config.Service{Name: "loose", Container: container.Spec{
		Security: container.Security{AllCaps: true, AllowDegraded: true, Devices: []string{"/dev/mem"}},
	}, Net: cnet.Spec{Mode: cnet.ModeHost}}
	_, low := securityReport(tight)
	_, high := securityReport(loose)
	if low != 0 || high < 5 {
		t.Errorf("exposure tight %.1f, loose %.1f: want 0 and at least 5", low, high)
	}
	var b bytes.Buffer
	printSecurity(&b, loose)
	for _, want := range []string{"✗ capabilities: ALL", "✗ shares the supervisor's network", "HIGH"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, &b)
		}
	}
}
