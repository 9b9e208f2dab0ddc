package net

import (
	"fmt"
	"strings"
	"testing"
)

func TestHostIfName(t *testing.T) {
	tests := []struct {
		name, service, want string
	}{
		{"short", "web", "crlweb"},
		{"exactly fits", "abcdefghijkl", "crlabcdefghijkl"},
		{"dash and underscore", "my-svc_1", "crlmy-svc_1"},
		// Golden values: these names end up in scripts and firewall rules,
		// so they must never change between releases.
		{"one too long", "abcdefghijklm", "crlabcde.74idat"},
		{"long", "prometheus-node-exporter", "crlprome.lpnfu4"},
		{"dot", "web.v2", "crlweb_v.zypjck"},
		{"slash and colon", "a/b:c", "crla_b_c.hmd7qd"},
		{"empty", "", "crl.4oymiq"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HostIfName(tt.service)
			if got != tt.want {
				t.Errorf("HostIfName(%q) = %q, want %q", tt.service, got, tt.want)
			}
			if !validIfName(got) {
				t.Errorf("HostIfName(%q) = %q, not a valid interface name", tt.service, got)
			}
		})
	}
}

func TestHostIfNameLongNamesDoNotCollide(t *testing.T) {
	seen := make(map[string]string)
	check := func(service string) {
		t.Helper()
		got := HostIfName(service)
		if len(got) > maxIfName {
			t.Fatalf("HostIfName(%q) = %q: %d bytes, want at most %d", service, got, len(got), maxIfName)
		}
		if !validIfName(got) || !strings.HasPrefix(got, hostIfPrefix) {
			t.Fatalf("HostIfName(%q) = %q: not a valid crl* interface name", service, got)
		}
		if other, ok := seen[got]; ok && other != service {
			t.Fatalf("HostIfName(%q) = HostIfName(%q) = %q", service, other, got)
		}
		seen[got] = service
	}
	// Names sharing a long common prefix, differing only at the end.
	for i := range 2000 {
		check(fmt.Sprintf("prometheus-exporter-%d", i))
		check(fmt.Sprintf("sensor-%d-prometheus-exporter", i))
	}
	// Direct names that look like hashed ones cannot clash with them.
	for i := range 500 {
		check(fmt.Sprintf("prome%07d", i))
		check(fmt.Sprintf("promelpnfu4%d", i%10))
	}
	check("prometheus-node-exporter")
}

func TestHostIfNameStable(t *testing.T) {
	for _, s := range []string{"web", "prometheus-node-exporter", "ünïcode-ßervice"} {
		a, b := HostIfName(s), HostIfName(s)
		if a != b {
			t.Errorf("HostIfName(%q) not stable: %q then %q", s, a, b)
		}
		if !validIfName(a) || len(a) > maxIfName {
			t.Errorf("HostIfName(%q) = %q: invalid", s, a)
		}
	}
}

func TestValidIfName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"eth0", true}, {"crlabcdefghijkl", true}, {"br.100", true},
		{"", false}, {".", false}, {"..", false}, {"a/b", false}, {"a:b", false},
		{"a b", false}, {"crlabcdefghijklm", false},
	}
	for _, tt := range tests {
		if got := validIfName(tt.name); got != tt.ok {
			t.Errorf("validIfName(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
}
