package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
)

// A service file that decoded cleanly goes through serviceChecks, in order.
// Each check owns a few keys: it validates them and fills in the matching
// part of the Service (a check that finds a problem may leave its part
// unset: the service will be disabled anyway). Checks that need every
// service (dependencies, addresses) run later, in link.
var serviceChecks = []func(*serviceCheck){
	checkExec,
	checkEnv,
	checkWorkdir,
	checkCredentials,
	checkDependencies,
	checkRestart,
	checkTimers,
	checkExitCodes,
	checkStopSignal,
	checkNotifyWatchdog,
	checkSecurity,
	checkLimits,
	checkContainer,
	checkMounts,
	checkNetwork,
}

// serviceCheck is what the service checks share.
type serviceCheck struct {
	*fileState
	f      *serviceFile
	svc    *Service
	global *Global
	deps   []dep // valid requires and after entries, for link
	allow  []dep // valid network.allow_from entries, for link
	ports  []port
	auto   bool // bridged with address "auto", for link
}

// port is one valid network.ports entry, for the conflict check in link.
type port struct {
	key string // e.g. "network.ports[1]"
	cnet.Port
}

// dep is one entry of requires or after.
type dep struct {
	key      string // e.g. "requires[1]"
	name     string
	requires bool
}

var (
	nameRE     = lazyRegexp(`^[a-z0-9][a-z0-9_-]{0,30}$`)
	envNameRE  = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE     = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
	ifnameRE   = lazyRegexp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
	moduleRE   = lazyRegexp(`^[A-Za-z0-9_-]{1,55}$`)
	hostnameRE = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
)

const nameRule = `a service name is its file name without ".toml": 1 to 31 lowercase letters, digits, "_" or "-", starting with a letter or digit`

func validHostname(s string) bool {
	return len(s) <= 64 && hostnameRE().MatchString(s)
}

func checkExec(c *serviceCheck) {
	if c.f.Exec.v == nil {
		c.errorf("exec", `missing: set the program to run, e.g. exec = ["/usr/bin/prog", "--flag"]`)
		return
	}
	if args, ok := c.argv("exec", c.f.Exec.v); ok {
		c.svc.Container.Args = args
	}
}

// argv reads a command (exec, reload): an array of strings, or one string
// split into words; the program must be an absolute path.
func (c *serviceCheck) argv(key string, v any) ([]string, bool) {
	var args []string
	first := key
	switch v := v.(type) {
	case string:
		words, err := splitWords(v)
		if err != nil {
			c.errorf(key, "%v", err)
			return nil, false
		}
		args = words
	default:
		list, ok := asList(v)
		if !ok {
			c.errorf(key, "must be a string or an array of strings, not %s", tomlType(v))
			return nil, false
		}
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				c.errorf(indexKey(key, i), "must be a string, not %s", tomlType(e))
				return nil, false
			}
			args = append(args, s)
		}
		first = indexKey(key, 0)
	}
	switch {
	case len(args) == 0:
		c.errorf(key, "is empty: give at least the program to run")
	case !path.IsAbs(args[0]):
		c.errorf(first, "program %q is not an absolute path (PATH is not searched)", args[0])
	case slices.ContainsFunc(args, hasNUL):
		c.errorf(key, "contains a NUL character")
	default:
		return args, true
	}
	return nil, false
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }

func checkEnv(c *serviceCheck) {
	var env []string
	if _, ok := c.f.Env["PATH"]; !ok {
		env = append(env, "PATH="+DefaultPath)
	}
	for _, k := range slices.Sorted(maps.Keys(c.f.Env)) {
		key, v := joinKey("env", k), c.f.Env[k]
		switch {
		case k == "NOTIFY_SOCKET":
			c.errorf(key, "is set by corral for every service (it points at the service's notify socket); remove it")
		case !envNameRE().MatchString(k):
			c.errorf(key, `invalid variable name %q (use letters, digits and "_", not starting with a digit)`, k)
		case hasNUL(v):
			c.errorf(key, "contains a NUL character")
		default:
			env = append(env, k+"="+v)
		}
	}
	c.svc.Container.Env = env
}

// absPath checks that p is an absolute path and returns it cleaned.
func (c *serviceCheck) absPath(key, p string) (string, bool) {
	switch {
	case !path.IsAbs(p):
		c.errorf(key, "%q is not an absolute path", p)
	case hasNUL(p):
		c.errorf(key, "contains a NUL character")
	default:
		return path.Clean(p), true
	}
	return "", false
}

func checkWorkdir(c *serviceCheck) {
	c.svc.Container.Dir, _ = c.absPath("workdir", c.f.Workdir)
}

func checkCredentials(c *serviceCheck) {
	c.svc.Container.User = c.credential("user", c.f.User.v)
	c.svc.Container.Group = c.credential("group", c.f.Group.v)
}

// credential checks a user or group: a name, or an id as an integer or a
// string of digits. It returns the string form ("" = root).
func (c *serviceCheck) credential(key string, v any) string {
	const maxID = 1<<32 - 2 // (uid_t)-1 means "no change" to the kernel
	switch v := v.(type) {
	case nil:
		return ""
	case int64:
		if v >= 0 && v <= maxID {
			return strconv.FormatInt(v, 10)
		}
		c.errorf(key, "id %d is out of range (0 to %d)", v, int64(maxID))
	case string:
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			if n <= maxID {
				return v
			}
			c.errorf(key, "id %s is out of range (0 to %d)", v, int64(maxID))
		} else if userRE().MatchString(v) {
			return v
		} else {
			c.errorf(key, `invalid name %q (up to 32 letters, digits, "_", "." or "-", not starting with a digit, "." or "-")`, v)
		}
	default:
		c.errorf(key, "must be a name or a numeric id, not %s", tomlType(v))
	}
	return ""
}

func checkDependencies(c *serviceCheck) {
	c.svc.Requires = c.depList("requires", c.f.Requires, true)
	c.svc.After = c.depList("after", c.f.After, false)
}

func (c *serviceCheck) depList(key string, names []string, requires bool) []string {
	var out []string
	for i, name := range names {
		k := indexKey(key, i)
		switch {
		case !nameRE().MatchString(name):
			c.errorf(k, "invalid service name %q (%s)", name, nameRule)
		case name == c.svc.Name:
			c.errorf(k, "a service cannot depend on itself")
		case slices.Contains(out, name):
			c.errorf(k, "%q is listed twice", name)
		default:
			out = append(out, name)
			c.deps = append(c.deps, dep{key: k, name: name, requires: requires})
		}
	}
	return out
}

func checkRestart(c *serviceCheck) {
	switch c.f.Restart {
	case "on-failure":
		c.svc.Restart = RestartOnFailure
	case "always":
		c.svc.Restart = RestartAlways
	case "never":
		c.svc.Restart = RestartNever
	default:
		c.errorf("restart", `unknown policy %q (use "on-failure", "always" or "never")`, c.f.Restart)
	}
}

func checkTimers(c *serviceCheck) {
	s, f := c.svc, c.f
	s.RestartDelay = time.Duration(f.RestartDelay)
	s.RestartDelayMax = time.Duration(f.RestartDelayMax)
	s.StableAfter = time.Duration(f.StableAfter)
	s.StartLimitBurst = f.StartLimitBurst
	s.StartLimitInterval = time.Duration(f.StartLimitInterval)
	s.StopTimeout = time.Duration(f.StopTimeout)
	s.StartTimeout = time.Duration(f.StartTimeout)

	const tightLoop = "a crashing service would restart in a tight loop"
	c.positive("restart_delay", s.RestartDelay, "a zero delay never grows, so "+tightLoop)
	if s.RestartDelayMax < s.RestartDelay {
		if c.lines.has("restart_delay_max") {
			c.errorf("restart_delay_max", "%v is less than restart_delay (%v)", s.RestartDelayMax, s.RestartDelay)
		} else {
			c.errorf("restart_delay", "%v is more than restart_delay_max (%v by default)", s.RestartDelay, s.RestartDelayMax)
		}
	}
	c.positive("stable_after", s.StableAfter, "every run would reset the backoff, so "+tightLoop)
	if s.StartLimitBurst < 0 {
		c.errorf("start_limit_burst", "must not be negative (0 means no limit)")
	}
	c.positive("start_limit_interval", s.StartLimitInterval, "it is the window start_limit_burst counts starts in")
	c.positive("start_timeout", s.StartTimeout, "a notify service would fail before it could send READY=1")
}

func (c *serviceCheck) positive(key string, d time.Duration, why string) {
	if d <= 0 {
		c.errorf(key, "must be more than 0: %s", why)
	}
}

func checkExitCodes(c *serviceCheck) {
	var codes []int
	for i, code := range c.f.PermanentExitCodes {
		if code < 0 || code > 255 {
			c.errorf(indexKey("permanent_exit_codes", i), "exit code %d is out of range (0 to 255)", code)
			continue
		}
		codes = append(codes, code)
	}
	c.svc.PermanentExitCodes = codes
}

func checkStopSignal(c *serviceCheck) {
	c.svc.StopSignal = c.signal("stop_signal", c.f.StopSignal)
}

// signal reads a signal name such as "SIGTERM" or "term".
func (c *serviceCheck) signal(key, name string) unix.Signal {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	sig := unix.SignalNum(n)
	if sig == 0 {
		c.errorf(key, `unknown signal %q (use a name such as "SIGTERM" or "TERM")`, name)
	}
	return sig
}

func checkNotifyWatchdog(c *serviceCheck) {
	s, f := c.svc, c.f
	s.Watchdog = time.Duration(f.Watchdog)
	if s.Watchdog < 0 {
		c.errorf("watchdog", "must not be negative (0 means off)")
	}
	s.WatchdogSignal = c.signal("watchdog_signal", f.WatchdogSignal)
	s.ReloadSignal = c.signal("reload_signal", f.ReloadSignal)
	s.Critical, s.SafeMode = f.Critical, f.SafeMode
	switch {
	case f.NotifyAccess == "" && (f.Notify || s.Watchdog > 0):
		s.NotifyAccess = NotifyMain
	case f.NotifyAccess == "":
		s.NotifyAccess = NotifyNone
	default:
		na, ok := ParseNotifyAccess(f.NotifyAccess)
		s.NotifyAccess = na
		if !ok {
			c.errorf("notify_access", `unknown value %q (use "main", "exec", "all" or "none")`, f.NotifyAccess)
		} else if na == NotifyNone && (f.Notify || s.Watchdog > 0) {
			c.errorf("notify_access", `"none" drops every datagram, but this service waits for READY=1 or WATCHDOG=1`)
		}
	}
	if f.Reload.v != nil {
		argv, ok := c.argv("reload", f.Reload.v)
		switch {
		case ok && !f.Container.Init:
			c.errorf("reload", "a reload command runs inside the container through its tiny init: set [container] init = true (or use reload_signal)")
		case ok:
			s.Reload = argv
		}
	}
}

func checkLimits(c *serviceCheck) {
	const why = "the child stage, a Go program, runs inside the service's cgroup before it execs the service"
	l, out := c.f.Limits, &c.svc.Container.Limits
	if l.Memory != nil {
		if out.MemoryMax = int64(*l.Memory); out.MemoryMax < MinMemory {
			c.errorf("limits.memory", "%s is below the minimum of %s (%s)", formatSize(out.MemoryMax), formatSize(MinMemory), why)
		}
	}
	if l.CPU != nil {
		// Written so that NaN fails too.
		if out.CPU = *l.CPU; !(out.CPU >= MinCPU && out.CPU <= MaxCPU) {
			c.errorf("limits.cpu", "%s is out of range (%g to %d cores: the kernel's smallest CPU quota is 1ms per 100ms)", strconv.FormatFloat(out.CPU, 'g', -1, 64), MinCPU, MaxCPU)
		}
	}
	if l.Pids != nil {
		if out.PidsMax = *l.Pids; out.PidsMax < MinPids {
			c.errorf("limits.pids", "%d is below the minimum of %d (%s)", out.PidsMax, MinPids, why)
		}
	}
}

func checkContainer(c *serviceCheck) {
	ct, out := c.f.Container, &c.svc.Container
	out.Name = c.svc.Name
	out.Init = ct.Init
	if ct.Rootfs != "" {
		out.Rootfs, _ = c.absPath("container.rootfs", ct.Rootfs)
	}
	out.Hostname = ct.Hostname
	// The default (the service name) may contain "_", which Linux accepts.
	if c.lines.has("container.hostname") && !validHostname(ct.Hostname) {
		c.errorf("container.hostname", `invalid hostname %q (dot-separated labels of letters, digits and "-", at most 64 characters)`, ct.Hostname)
	}
}

func checkMounts(c *serviceCheck) {
	targets := map[string]string{} // cleaned target -> key of its mount
	for i, m := range c.f.Container.Mounts {
		key := indexKey("container.mounts", i)
		out := container.Mount{Type: container.MountType(m.Type)}
		switch m.Type {
		case "":
			if m.Source == "" {
				c.errorf(key, `set source for a bind mount, or type = "tmpfs"`)
				continue
			}
			out.Type = container.MountBind
		case "bind", "tmpfs":
		default:
			c.errorf(key+".type", `unknown mount type %q (use "bind" or "tmpfs")`, m.Type)
			continue
		}
		if out.Type == container.MountBind {
			out.ReadOnly = true
			if m.Source == "" {
				c.errorf(key+".source", "missing: a bind mount needs the path to mount")
			} else {
				out.Source, _ = c.absPath(key+".source", m.Source)
			}
			if m.Size != nil {
				c.errorf(key+".size", "only a tmpfs has a size")
			}
		} else {
			if m.Source != "" {
				c.errorf(key+".source", "a tmpfs has no source")
			}
			if m.Size != nil {
				if out.Size = int64(*m.Size); out.Size == 0 {
					c.errorf(key+".size", "must be more than 0 (leave it out for the kernel's default)")
				}
			}
		}
		if m.ReadOnly != nil {
			out.ReadOnly = *m.ReadOnly
		}
		tkey := key + ".target"
		if m.Target == "" {
			c.errorf(tkey, "missing: set the absolute path to mount on")
			continue
		}
		target, ok := c.absPath(tkey, m.Target)
		switch {
		case !ok:
			continue
		case target == "/":
			c.errorf(tkey, "cannot mount on /; set container.rootfs to choose the root")
			continue
		case reservedTarget(target) != "":
			c.errorf(tkey, "cannot mount on %s: %s", target, reservedTarget(target))
			continue
		case targets[target] != "":
			c.errorf(tkey, "%s is already the target of %s", target, targets[target])
			continue
		}
		targets[target], out.Target = key, target
		c.svc.Container.Mounts = append(c.svc.Container.Mounts, out)
	}
}

// reservedTarget says why a mount target would break the container (it
// would hide what corral mounts there), or "".
func reservedTarget(t string) string {
	for _, r := range []struct{ dir, why string }{
		{"/proc", "corral mounts the container's own /proc there"},
		{"/sys", "corral mounts a read-only /sys there"},
		{"/dev", "corral makes the container's /dev there"},
		{"/run/notify", "it holds the service's notify socket"},
	} {
		if t == r.dir || strings.HasPrefix(t, r.dir+"/") {
			return r.why
		}
	}
	if t == "/run" {
		return "/run/notify (the notify socket) is inside it; mount below /run instead"
	}
	return ""
}

func checkNetwork(c *serviceCheck) {
	n := c.f.Network
	mode, ok := cnet.ParseMode(n.Mode)
	if !ok || n.Mode == "" {
		c.errorf("network.mode", `unknown mode %q (use "bridge", "host" or "none")`, n.Mode)
		return
	}
	c.svc.Net.Mode = mode
	c.svc.Container.HostNetwork = mode == cnet.ModeHost
	checkPolicy(c, mode)
	switch {
	case n.Address == nil || *n.Address == "auto" && mode == cnet.ModeBridge:
		c.auto = mode == cnet.ModeBridge
	case mode != cnet.ModeBridge:
		c.errorf("network.address", "only a bridged service has an address (this one's mode is %q)", n.Mode)
	default:
		addr, err := netip.ParseAddr(*n.Address)
		if err != nil || !addr.Is4() {
			c.errorf("network.address", `invalid address %q (use "auto" or an IPv4 address such as "10.88.0.10")`, *n.Address)
			return
		}
		if msg := staticProblem(c.global.Network, addr); msg != "" {
			c.errorf("network.address", "%s", msg)
			return
		}
		c.svc.Net.Address = addr
	}
}

// checkPolicy checks the bridge-only keys: ports, allow_from, isolated.
func checkPolicy(c *serviceCheck, mode cnet.Mode) {
	n := c.f.Network
	if mode != cnet.ModeBridge {
		for _, k := range []struct {
			key, what string
			set       bool
		}{
			{"network.ports", "can publish ports", len(n.Ports) > 0},
			{"network.allow_from", "takes connections from other services", len(n.AllowFrom) > 0},
			{"network.isolated", "can be isolated", n.Isolated},
		} {
			if k.set {
				c.errorf(k.key, "only a bridged service %s (this one's mode is %q)", k.what, n.Mode)
			}
		}
		return
	}
	c.svc.Net.Isolated = n.Isolated
	seen := map[string]string{} // "8080/tcp" -> key that published it
	for i, s := range n.Ports {
		key := indexKey("network.ports", i)
		p, err := parsePort(s)
		if err != nil {
			c.errorf(key, "%v", err)
			continue
		}
		hp := fmt.Sprintf("%d/%s", p.Host, p.Proto)
		if other := seen[hp]; other != "" {
			c.errorf(key, "host port %s is already published by %s", hp, other)
			continue
		}
		seen[hp] = key
		c.ports = append(c.ports, port{key: key, Port: p})
		c.svc.Net.Ports = append(c.svc.Net.Ports, p)
	}
	if n.Isolated && len(n.Ports) > 0 {
		c.errorf("network.isolated", "an isolated service cannot publish ports (network.ports): isolated cuts it off the outside")
	}
	for i, name := range n.AllowFrom {
		k := indexKey("network.allow_from", i)
		switch {
		case !nameRE().MatchString(name):
			c.errorf(k, "invalid service name %q (%s)", name, nameRule)
		case name == c.svc.Name:
			c.errorf(k, "a service can always reach itself")
		case slices.Contains(c.svc.Net.AllowFrom, name):
			c.errorf(k, "%q is listed twice", name)
		default:
			c.svc.Net.AllowFrom = append(c.svc.Net.AllowFrom, name)
			c.allow = append(c.allow, dep{key: k, name: name})
		}
	}
}

// parsePort reads one network.ports entry: "HOST:CONTAINER[/PROTO]".
func parsePort(s string) (cnet.Port, error) {
	const use = `use "HOST:CONTAINER" or "HOST:CONTAINER/PROTO" with PROTO tcp or udp, e.g. "8080:80/tcp"`
	ports, proto, hasProto := strings.Cut(s, "/")
	p := cnet.Port{Proto: cnet.TCP}
	if hasProto {
		var ok bool
		if p.Proto, ok = cnet.ParseProto(proto); !ok {
			return p, fmt.Errorf("invalid port forward %q: unknown protocol %q (%s)", s, proto, use)
		}
	}
	host, ctr, ok := strings.Cut(ports, ":")
	if !ok {
		return p, fmt.Errorf("invalid port forward %q (%s)", s, use)
	}
	for _, f := range []struct {
		text string
		out  *uint16
	}{{host, &p.Host}, {ctr, &p.Container}} {
		n, err := strconv.ParseUint(f.text, 10, 16)
		if err != nil || n == 0 || f.text != strconv.FormatUint(n, 10) {
			return p, fmt.Errorf("invalid port forward %q: %q is not a port from 1 to 65535 (%s)", s, f.text, use)
		}
		*f.out = uint16(n)
	}
	return p, nil
}

// staticProblem says why addr cannot be a service's static address on the
// bridge b, or returns "".
func staticProblem(b cnet.BridgeConfig, addr netip.Addr) string {
	first, last := b.Gateway().Next(), broadcast(b.Subnet).Prev()
	use := "; use one from " + first.String() + " to " + last.String()
	switch {
	case !b.Subnet.Contains(addr):
		return "address " + addr.String() + " is outside the bridge subnet " + b.Subnet.String()
	case addr == b.Subnet.Masked().Addr():
		return "address " + addr.String() + " is the subnet's network address" + use
	case addr == b.Gateway():
		return "address " + addr.String() + " is the bridge's own address (the gateway)" + use
	case addr == broadcast(b.Subnet):
		return "address " + addr.String() + " is the subnet's broadcast address" + use
	}
	return ""
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	for i := range a {
		a[i] |= byte(host >> (8 * (3 - i)))
	}
	return netip.AddrFrom4(a)
}

// corral.toml goes through globalChecks. A setting with a problem keeps its
// default, and its message says so.
var globalChecks = []func(*globalCheck){
	checkHostname,
	checkModules,
	checkBridge,
	checkSubnet,
	checkDNS,
	checkLog,
	checkBoot,
	checkStorage,
	checkWatchdog,
	checkUserns,
	checkLogFiles,
	checkSyslog,
	checkAPI,
	checkMetrics,
}

type globalCheck struct {
	*fileState
	f *globalFile
	g *Global
}

func (c *globalCheck) fallback(key, def, format string, args ...any) {
	args = append(args, def)
	c.errorf(key, format+"; using the default %q", args...)
}

func checkHostname(c *globalCheck) {
	if !validHostname(c.f.Hostname) {
		c.fallback("hostname", c.g.Hostname, `invalid hostname %q (dot-separated labels of letters, digits and "-", at most 64 characters)`, c.f.Hostname)
		return
	}
	c.g.Hostname = c.f.Hostname
}

func checkModules(c *globalCheck) {
	for i, m := range c.f.Modules {
		key := indexKey("modules", i)
		switch {
		case !moduleRE().MatchString(m):
			c.errorf(key, `invalid module name %q (letters, digits, "_" and "-"); not loading it`, m)
		case slices.Contains(c.g.Modules, m):
			c.errorf(key, "%q is listed twice", m)
		default:
			c.g.Modules = append(c.g.Modules, m)
		}
	}
}

func checkBridge(c *globalCheck) {
	b := c.f.Network.Bridge
	if !ifnameRE().MatchString(b) {
		c.fallback("network.bridge", c.g.Network.Name, `invalid interface name %q (1 to 15 letters, digits, "_", "." or "-", starting with a letter or digit)`, b)
		return
	}
	c.g.Network.Name = b
}

func checkSubnet(c *globalCheck) {
	const key = "network.subnet"
	s, def := c.f.Network.Subnet, c.g.Network.Subnet.String()
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is4():
		c.fallback(key, def, `invalid subnet %q (use an IPv4 network in CIDR form, such as "10.88.0.0/24")`, s)
	case p.Bits() < 8 || p.Bits() > 30:
		c.fallback(key, def, "prefix length /%d is out of range (/8 to /30: the bridge and at least one service need an address)", p.Bits())
	case p.Masked() != p:
		c.fallback(key, def, "%s is not a network address (did you mean %q?)", s, p.Masked().String())
	default:
		c.g.Network.Subnet = p
	}
}

// maxNameservers is how many nameservers a resolver reads (glibc's and
// musl's MAXNS).
const maxNameservers = 3

func checkDNS(c *globalCheck) {
	for i, s := range c.f.Network.DNS {
		key := indexKey("network.dns", i)
		addr, err := netip.ParseAddr(s)
		switch {
		case err != nil || addr.Zone() != "":
			c.errorf(key, `invalid nameserver %q (use an IPv4 or IPv6 address such as "1.1.1.1"); not using it`, s)
		case slices.Contains(c.g.DNS, addr.Unmap()):
			c.errorf(key, "%q is listed twice", s)
		case len(c.g.DNS) == maxNameservers:
			c.errorf(key, "a resolver reads at most %d nameservers; not using %s", maxNameservers, s)
		default:
			c.g.DNS = append(c.g.DNS, addr.Unmap())
		}
	}
}

func checkLog(c *globalCheck) {
	if l := c.f.Log.Level; slices.Contains([]string{"debug", "info", "warn", "error"}, l) {
		c.g.Log.Level = l
	} else {
		c.fallback("log.level", c.g.Log.Level, `unknown level %q (use "debug", "info", "warn" or "error")`, l)
	}
	if f := c.f.Log.Format; slices.Contains([]string{"auto", "console", "json"}, f) {
		c.g.Log.Format = f
	} else {
		c.fallback("log.format", c.g.Log.Format, `unknown format %q (use "auto", "console" or "json")`, f)
	}
}

// devRE is a device reference: a /dev path, or the LABEL= or UUID= of an
// ext2/3/4 file system (corral reads the superblocks itself: there is no
// udev to make /dev/disk/by-label).
var devRE = lazyRegexp(`^(/dev/[A-Za-z0-9/._:-]+|LABEL=[^\s/]{1,16}|UUID=[0-9A-Fa-f-]{32,36})$`)

// fstypeRE is a file system type name.
var fstypeRE = lazyRegexp(`^[a-z0-9_.]{1,32}$`)

func checkBoot(c *globalCheck) {
	b := c.f.Boot
	if b.Root != "" && !devRE().MatchString(b.Root) {
		c.errorf("boot.root", `invalid device %q (use a /dev path, LABEL=... or UUID=... of an ext2/3/4 file system); not switching root`, b.Root)
	} else {
		c.g.Boot.Root = b.Root
	}
	if !fstypeRE().MatchString(b.RootFSType) {
		c.fallback("boot.root_fstype", c.g.Boot.FSType, "invalid file system type %q", b.RootFSType)
	} else {
		c.g.Boot.FSType = b.RootFSType
	}
	c.g.Boot.Options = b.RootOptions
	if d := time.Duration(b.RootTimeout); d <= 0 {
		c.fallback("boot.root_timeout", c.g.Boot.Timeout.String(), "must be more than 0")
	} else {
		c.g.Boot.Timeout = d
	}
}

func checkStorage(c *globalCheck) {
	s := c.f.Storage
	if s.Data != "" && !devRE().MatchString(s.Data) {
		c.errorf("storage.data", `invalid device %q (use a /dev path, LABEL=... or UUID=... of an ext2/3/4 file system); no data partition`, s.Data)
	} else {
		c.g.Storage.Data = s.Data
	}
	if !fstypeRE().MatchString(s.DataFSType) {
		c.fallback("storage.data_fstype", c.g.Storage.FSType, "invalid file system type %q", s.DataFSType)
	} else {
		c.g.Storage.FSType = s.DataFSType
	}
	if s.Var && c.g.Storage.Data == "" {
		c.errorf("storage.var", "var = true needs storage.data (a data partition to keep /var on)")
	} else {
		c.g.Storage.Var = s.Var
	}
}

func checkWatchdog(c *globalCheck) {
	w := c.f.Watchdog
	if w.Device != "" && !strings.HasPrefix(w.Device, "/dev/") {
		c.errorf("watchdog.device", "%q is not a /dev path; no hardware watchdog", w.Device)
	} else {
		c.g.Watchdog.Device = w.Device
	}
	switch d := time.Duration(w.Timeout); {
	case d < time.Second || d%time.Second != 0:
		c.fallback("watchdog.timeout", c.g.Watchdog.Timeout.String(), "%v: the device takes whole seconds, at least 1s", d)
	default:
		c.g.Watchdog.Timeout = d
	}
	if w.BootLimit < 0 {
		c.fallback("watchdog.boot_limit", fmt.Sprint(c.g.Watchdog.BootLimit), "must not be negative (0 means never)")
	} else {
		c.g.Watchdog.BootLimit = w.BootLimit
	}
}

// rlimitNames are setrlimit's resources (include/uapi/asm-generic/resource.h).
var rlimitNames = map[string]int{
	"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
	"nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
	"nice": 13, "rtprio": 14, "rttime": 15,
}

const rlimInfinity = ^uint64(0)

func checkSecurity(c *serviceCheck) {
	f, sec := c.f, &c.svc.Container.Security
	sec.NoNewPrivs, sec.Seccomp, sec.AllowNamespaces, sec.AllowDegraded = f.NoNewPrivs, f.Seccomp, f.AllowNamespaces, f.AllowDegraded
	for i, name := range f.Capabilities {
		key := indexKey("capabilities", i)
		if strings.EqualFold(name, "ALL") {
			sec.AllCaps = true
			continue
		}
		if _, ok := container.CapNumber(name); !ok {
			c.errorf(key, `unknown capability %q (use a name such as "CAP_NET_RAW", or "ALL")`, name)
			continue
		}
		sec.Ambient = append(sec.Ambient, "CAP_"+strings.TrimPrefix(strings.ToUpper(name), "CAP_"))
	}
	if f.Capabilities != nil && !sec.AllCaps {
		sec.Caps = append(slices.Clone(container.DefaultCaps), sec.Ambient...)
	}
	if f.OOMScoreAdj < -1000 || f.OOMScoreAdj > 1000 {
		c.errorf("oom_score_adj", "%d is out of range (-1000 to 1000)", f.OOMScoreAdj)
	}
	sec.OOMScoreAdj = f.OOMScoreAdj
	if f.Nice != nil && (*f.Nice < -20 || *f.Nice > 19) {
		c.errorf("nice", "%d is out of range (-20 to 19)", *f.Nice)
	}
	sec.Nice = f.Nice
	for i, cpu := range f.CPUs {
		if cpu < 0 || cpu > 1023 {
			c.errorf(indexKey("cpus", i), "CPU %d is out of range (0 to 1023)", cpu)
		}
	}
	sec.CPUs = f.CPUs
	for _, d := range f.Container.Devices {
		if p := path.Clean(d); !strings.HasPrefix(p, "/dev/") || p != d {
			c.errorf("container.devices", "%q is not a device under /dev (an absolute, clean path)", d)
			continue
		}
		sec.Devices = append(sec.Devices, d)
	}
	names := slices.Sorted(maps.Keys(f.Rlimits))
	for _, n := range names {
		key := "rlimits." + n
		res, ok := rlimitNames[n]
		if !ok {
			c.errorf(key, "unknown resource %q (as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)", n)
			continue
		}
		cur, max, ok := c.rlimitValue(key, f.Rlimits[n].v)
		if !ok {
			continue
		}
		sec.Rlimits = append(sec.Rlimits, container.Rlimit{Name: n, Resource: res, Cur: cur, Max: max})
	}
}

// rlimitValue reads a number, "unlimited", or [soft, hard].
func (c *serviceCheck) rlimitValue(key string, v any) (uint64, uint64, bool) {
	one := func(key string, v any) (uint64, bool) {
		switch v := v.(type) {
		case int64:
			if v < 0 {
				c.errorf(key, "must not be negative")
				return 0, false
			}
			return uint64(v), true
		case string:
			if v == "unlimited" || v == "infinity" {
				return rlimInfinity, true
			}
		}
		c.errorf(key, `must be a number or "unlimited", not %s`, tomlType(v))
		return 0, false
	}
	if list, ok := asList(v); ok {
		if len(list) != 2 {
			c.errorf(key, "must be [soft, hard]")
			return 0, 0, false
		}
		cur, ok1 := one(indexKey(key, 0), list[0])
		max, ok2 := one(indexKey(key, 1), list[1])
		if ok1 && ok2 && cur > max {
			c.errorf(key, "the soft limit %d is above the hard limit %d", cur, max)
			return 0, 0, false
		}
		return cur, max, ok1 && ok2
	}
	n, ok := one(key, v)
	return n, n, ok
}

func checkUserns(c *globalCheck) {
	u := c.f.Userns
	switch {
	case u.FirstID < 1 || u.Size < 1 || u.Slots < 1:
		c.errorf("userns", "first_id, size and slots must be positive; using the defaults")
	case u.FirstID+u.Size*u.Slots > 1<<32-2:
		c.errorf("userns", "first_id + size*slots (%d) is past the largest uid; using the defaults", u.FirstID+u.Size*u.Slots)
	default:
		c.g.Userns = Userns{FirstID: uint32(u.FirstID), Size: uint32(u.Size), Slots: uint32(u.Slots)}
	}
}
func checkLogFiles(c *globalCheck) {
	l := c.f.Log
	if l.Dir != "" && !path.IsAbs(l.Dir) {
		c.errorf("log.dir", "%q is not an absolute path; logs are kept in RAM only", l.Dir)
	} else {
		c.g.Log.Dir = path.Clean(l.Dir)
		if l.Dir == "" {
			c.g.Log.Dir = ""
		}
	}
	if l.FileSize < 4<<10 {
		c.fallback("log.file_size", fmt.Sprint(c.g.Log.FileSize), "%d bytes is too small (at least 4K)", int64(l.FileSize))
	} else {
		c.g.Log.FileSize = int64(l.FileSize)
	}
	if l.Keep < 0 || l.Keep > 100 {
		c.fallback("log.keep", fmt.Sprint(c.g.Log.Keep), "%d is out of range (0 to 100 rotated files)", l.Keep)
	} else {
		c.g.Log.Keep = l.Keep
	}
	if int64(l.TotalSize) < c.g.Log.FileSize {
		c.fallback("log.total_size", fmt.Sprint(c.g.Log.TotalSize), "%d bytes is less than file_size (%d)", int64(l.TotalSize), c.g.Log.FileSize)
	} else {
		c.g.Log.TotalSize = int64(l.TotalSize)
	}
	if l.Rate < 0 {
		c.fallback("log.rate", fmt.Sprint(c.g.Log.Rate), "must not be negative (0 means no limit)")
	} else {
		c.g.Log.Rate = l.Rate
	}
	if l.Burst < 1 {
		c.fallback("log.burst", fmt.Sprint(c.g.Log.Burst), "must be at least 1")
	} else {
		c.g.Log.Burst = l.Burst
	}
}

func checkSyslog(c *globalCheck) {
	v := c.f.Log.Syslog
	if v == "" {
		return
	}
	scheme, addr, ok := strings.Cut(v, "://")
	host, port, err := net.SplitHostPort(addr)
	switch {
	case !ok || (scheme != "udp" && scheme != "tcp"):
		c.errorf("log.syslog", `%q: use "udp://HOST:PORT" or "tcp://HOST:PORT"; no remote syslog`, v)
	case err != nil || host == "" || port == "":
		c.errorf("log.syslog", `%q: the address must be HOST:PORT, such as "udp://10.0.0.5:514"; no remote syslog`, v)
	default:
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			c.errorf("log.syslog", "%q: port %s is not 1 to 65535; no remote syslog", v, port)
			return
		}
		c.g.Log.Syslog = Syslog{Network: scheme, Addr: addr}
	}
}

func checkAPI(c *globalCheck) {
	const key = "api.read_group"
	switch v := c.f.API.ReadGroup.v.(type) {
	case nil:
	case int64:
		if v < 0 || v > 1<<32-2 {
			c.errorf(key, "gid %d is out of range; the socket stays root's", v)
			return
		}
		c.g.API.ReadGroup = int(v)
	case string:
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && n <= 1<<32-2 {
			c.g.API.ReadGroup = int(n)
		} else if userRE().MatchString(v) {
			c.g.API.ReadGroupName = v
		} else {
			c.errorf(key, `invalid group %q (a name from /etc/group or a numeric gid); the socket stays root's`, v)
		}
	default:
		c.errorf(key, "must be a group name or a numeric gid, not %s; the socket stays root's", tomlType(v))
	}
}

func checkMetrics(c *globalCheck) {
	v := c.f.Metrics.Listen
	if v == "" {
		return
	}
	_, port, err := net.SplitHostPort(v)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		c.errorf("metrics.listen", `%q is not an address to listen on, such as "127.0.0.1:9100" or ":9100"; no metrics endpoint`, v)
		return
	}
	c.g.Metrics.Listen = v
}

// lazyRegexp compiles a pattern on first use, not at package init: every
// process corral starts runs this binary's init, a container's child stage
// and each CLI command too, and hostnameRE alone costs thousands of
// allocations to compile.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
