package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor/config"
)

// exposureItem is one line of `corral check --security`: a property of the
// effective sandbox, whether it holds, and how much its absence exposes
// (weights add up to 10, as systemd-analyze security's scale).
type exposureItem struct {
	ok     bool
	weight float64
	text   string
}

// securityReport describes a service's effective sandbox, as configured
// (what a start then verifies).
func securityReport(s *config.Service) ([]exposureItem, float64) {
	c, sec := s.Container, s.Container.Security
	caps := sec.Caps
	if caps == nil {
		caps = container.DefaultCaps
	}
	root := c.User == "" || c.User == "0" || c.User == "root"
	var items []exposureItem
	add := func(ok bool, w float64, format string, args ...any) {
		items = append(items, exposureItem{ok, w, fmt.Sprintf(format, args...)})
	}
	add(true, 0, "own pid, mount, uts, ipc and cgroup namespaces")
	switch s.Net.Mode {
	case cnet.ModeHost:
		add(false, 1.5, "shares the supervisor's network (mode = \"host\")")
	case cnet.ModeNone:
		add(true, 0, "own network namespace with only lo (mode = \"none\")")
	default:
		add(true, 0, "own network namespace on the bridge (%s)", s.Net.Address)
	}
	add(true, 0, "read-only root (%s)", orDefault(c.Rootfs, "the supervisor's /"))
	add(sec.NoNewPrivs, 1, "no_new_privs (exec cannot gain privileges)")
	add(sec.Seccomp, 1.5, "seccomp: the default filter%s", map[bool]string{true: ", namespaces allowed", false: ""}[sec.AllowNamespaces])
	switch {
	case sec.AllCaps:
		add(false, 2, "capabilities: ALL")
	case root:
		add(len(caps) <= len(container.DefaultCaps), 1, "capabilities (root): %s", strings.Join(caps, ", "))
	default:
		add(true, 0, "capabilities (as %s): %s", c.User, orDefault(strings.Join(sec.Ambient, ", "), "none"))
	}
	add(!root, 1, "runs as %s", orDefault(c.User, "root"))
	if m := c.UserNS; m != nil {
		add(true, 0, "own user namespace: its root is uid %d on the host (ids %d-%d)", m.HostID, m.HostID, m.HostID+m.Size-1)
	} else {
		add(false, 1, "no user namespace: its root is the host's root (user_namespace = false)")
	}
	add(c.Limits.MemoryMax > 0, 0.5, "memory limit: %s", limitText(c.Limits.MemoryMax > 0, fmt.Sprintf("%d MiB", c.Limits.MemoryMax>>20)))
	add(c.Limits.PidsMax > 0, 0.5, "pids limit: %s", limitText(c.Limits.PidsMax > 0, fmt.Sprint(c.Limits.PidsMax)))
	add(c.Limits.CPU > 0, 0.25, "cpu limit: %s", limitText(c.Limits.CPU > 0, fmt.Sprintf("%g cores", c.Limits.CPU)))
	add(true, 0, "masked: /proc/kcore, /proc/keys, ...; read-only: /proc/sys, /proc/sysrq-trigger, ...")
	add(len(sec.Devices) == 0, 0.5, "devices: %s", orDefault(strings.Join(sec.Devices, ", "), "only null, zero, full, random, urandom, tty"))
	add(!sec.AllowDegraded, 0.25, "a sandbox that does not apply fails the start%s", map[bool]string{true: " (allow_degraded: it runs marked degraded)", false: ""}[sec.AllowDegraded])
	var exposure float64
	for _, it := range items {
		if !it.ok {
			exposure += it.weight
		}
	}
	return items, exposure
}

func limitText(ok bool, v string) string {
	if ok {
		return v
	}
	return "none"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func printSecurity(w io.Writer, s *config.Service) {
	items, exposure := securityReport(s)
	fmt.Fprintf(w, "%s: the sandbox it starts with (checked again after every start)\n", s.Name)
	for _, it := range items {
		mark := "✓"
		if !it.ok {
			mark = "✗"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, it.text)
	}
	level := "LOW"
	switch {
	case exposure >= 5:
		level = "HIGH"
	case exposure >= 2:
		level = "MEDIUM"
	}
	fmt.Fprintf(w, "exposure %.1f of 10 (lower is better): %s\n", exposure, level)
}
