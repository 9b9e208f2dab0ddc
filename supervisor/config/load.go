package config

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
)

// Load reads the configuration in dir: dir/corral.toml (optional) and
// dir/services/*.toml (a missing services directory means no services).
// Files whose names do not end in ".toml", and hidden files, are ignored.
//
// Load returns an error only when dir or dir/services exists but cannot be
// read. Every problem in a file goes into Config.Problems and disables that
// service (or, for corral.toml, makes the settings at fault keep their
// defaults); it never stops other files from loading.
func Load(dir string) (*Config, error) {
	if _, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("load config from %s: %w", dir, err)
	}
	cfg := &Config{Dir: dir}
	global, problems := loadGlobal(filepath.Join(dir, globalFileName))
	cfg.Global = global

	sdir := filepath.Join(dir, servicesDir)
	entries, err := os.ReadDir(sdir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Legal (a machine with no services), but most likely the wrong
		// directory: say so.
		problems = append(problems, &Error{File: sdir, Msg: "no such directory: no services (is " + dir + " a corral configuration directory, holding corral.toml and services/?)"})
	case err != nil:
		return nil, fmt.Errorf("load config from %s: %w", dir, err)
	}
	var units []*unit
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".toml")
		if !ok || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		units = append(units, loadService(name, filepath.Join(sdir, e.Name()), &cfg.Global))
	}
	link(units, cfg.Global)
	assignIDs(units, cfg.Global.Userns)

	for _, u := range units {
		problems = append(problems, u.errs...)
		if u.reason != "" {
			cfg.Disabled = append(cfg.Disabled, Disabled{Name: u.name, File: u.file, Reason: u.reason})
		} else {
			cfg.Services = append(cfg.Services, u.svc)
		}
	}
	slices.SortStableFunc(problems, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	cfg.Problems = problems
	return cfg, nil
}

func defaultGlobal(file string) Global {
	f := defaultGlobalFile()
	return Global{
		File:     file,
		Hostname: f.Hostname,
		Network:  cnet.BridgeConfig{Name: f.Network.Bridge, Subnet: netip.MustParsePrefix(f.Network.Subnet)},
		Log: LogConfig{Level: f.Log.Level, Format: f.Log.Format, FileSize: int64(f.Log.FileSize), Keep: f.Log.Keep,
			TotalSize: int64(f.Log.TotalSize), Rate: f.Log.Rate, Burst: f.Log.Burst},
		API:      API{ReadGroup: -1},
		Boot:     Boot{FSType: f.Boot.RootFSType, Options: f.Boot.RootOptions, Timeout: time.Duration(f.Boot.RootTimeout)},
		Storage:  Storage{FSType: f.Storage.DataFSType},
		Watchdog: Watchdog{Timeout: time.Duration(f.Watchdog.Timeout), BootLimit: f.Watchdog.BootLimit},
		Userns:   Userns{FirstID: uint32(f.Userns.FirstID), Size: uint32(f.Userns.Size), Slots: uint32(f.Userns.Slots)},
	}
}

// loadGlobal reads corral.toml. A missing file means all defaults.
func loadGlobal(file string) (Global, []*Error) {
	g := defaultGlobal(file)
	text, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return g, nil
	}
	st := &fileState{file: file}
	if err != nil {
		st.errorf("", "cannot read (every global setting has its default): %v", unwrapPath(err))
		return g, st.errs
	}
	f := defaultGlobalFile()
	if !st.decodeLenient(string(text), &f) {
		st.errorf("", "not used because of the problems below: every global setting has its default")
		return g, st.errs
	}
	c := &globalCheck{fileState: st, f: &f, g: &g}
	for _, check := range globalChecks {
		check(c)
	}
	return g, st.errs
}

// unwrapPath drops the path from a *fs.PathError: the Error already names
// the file.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// unit is one service file on its way to becoming a Service.
type unit struct {
	fileState
	name   string
	svc    *Service // nil when the file could not be decoded
	deps   []dep
	allow  []dep
	ports  []port
	auto   bool
	userns bool   // container.user_namespace: gets a block of host ids
	reason string // why it is disabled; "" while it is enabled
}

// loadService reads, decodes and checks one service file.
func loadService(name, file string, g *Global) *unit {
	u := &unit{fileState: fileState{file: file}, name: name}
	if !nameRE().MatchString(name) {
		u.errorf("", "invalid service name %q (%s)", name, nameRule)
		return u
	}
	if name == reservedName {
		u.errorf("", "the service name %q is reserved: `corral logs corral` shows corral's own log; rename the file", name)
		return u
	}
	text, err := os.ReadFile(file)
	if err != nil {
		u.errorf("", "cannot read: %v", unwrapPath(err))
		return u
	}
	decodeService(u, string(text), g)
	return u
}

// decodeService decodes and checks the text of one service file.
func decodeService(u *unit, text string, g *Global) {
	f := defaultServiceFile(u.name)
	// Leniently: a key of the wrong type is reported and dropped, and the
	// rest is still checked, so that `corral check` shows every problem
	// of the file in one go. The file is disabled all the same.
	n := len(u.errs)
	if !u.decodeLenient(text, &f) {
		return
	}
	dropped := map[string]bool{}
	for _, e := range u.errs[n:] {
		dropped[e.Key] = true
	}
	m := len(u.errs)
	c := &serviceCheck{
		fileState: &u.fileState,
		f:         &f,
		global:    g,
		svc: &Service{
			Name:        u.name,
			File:        u.file,
			Description: f.Description,
			Notify:      f.Notify,
		},
	}
	for _, check := range serviceChecks {
		check(c)
	}
	// A dropped key has its default now: no second problem for it.
	kept := u.errs[:m]
	for _, e := range u.errs[m:] {
		if !dropped[e.Key] {
			kept = append(kept, e)
		}
	}
	u.errs = kept
	u.svc, u.deps, u.allow, u.ports, u.auto, u.userns = c.svc, c.deps, c.allow, c.ports, c.auto, c.f.Container.UserNamespace
}

// link runs the checks that need every service, then decides which
// services are disabled, in this order (each step only looks at services
// the steps before left enabled):
//
//  1. requires, after and network.allow_from must name existing service
//     files
//  2. static addresses must differ; "auto" addresses are given out
//  3. two services cannot publish the same host port
//  4. a service with any problem is disabled
//  5. every service on a dependency cycle is disabled
//  6. a service that requires a disabled service is disabled
func link(units []*unit, g Global) {
	slices.SortFunc(units, func(a, b *unit) int { return cmp.Compare(a.name, b.name) })
	byName := map[string]*unit{}
	for _, u := range units {
		if nameRE().MatchString(u.name) {
			byName[u.name] = u
		}
	}
	for _, u := range units {
		for _, d := range u.deps {
			if byName[d.name] == nil {
				u.errorf(d.key, "unknown service %q (there is no %s/%s.toml)", d.name, servicesDir, d.name)
			}
		}
	}
	for _, u := range units {
		for _, d := range u.allow {
			switch r := byName[d.name]; {
			case r == nil:
				u.errorf(d.key, "unknown service %q (there is no %s/%s.toml)", d.name, servicesDir, d.name)
			case r.svc != nil && r.svc.Net.Mode == cnet.ModeNone:
				u.errorf(d.key, "%q has network.mode \"none\": it cannot connect to anything", d.name)
			}
		}
	}
	assignAddresses(units, g.Network)
	checkPortConflicts(units)
	for _, u := range units {
		if len(u.errs) > 0 {
			slices.SortStableFunc(u.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
			u.reason = u.errs[0].keyMsg()
			if n := len(u.errs) - 1; n > 0 {
				u.reason += fmt.Sprintf(" (and %s)", count(n, "more problem"))
			}
		}
	}
	breakCycles(units, byName)
	disableDependants(units, byName)
}

// assignAddresses checks that static addresses are unique, then gives each
// bridged "auto" service an address. Services with problems take part in
// neither.
//
// An "auto" address must not move when other services are added or
// removed: services talk to each other by name, but the outside (a
// router's port forward, a log, an operator) remembers addresses. So each
// service has a home in the pool, derived from its name alone (homeSlot),
// and the rule is:
//
//  1. static addresses are reserved;
//  2. every service whose home is free takes it; when several share one
//     home, the first by name does;
//  3. the others, in name order, take the next free address after their
//     home (wrapping around the pool).
//
// A service that got its home therefore keeps it whatever else changes,
// unless a new static address or a new service with the same home (about
// one chance in the pool size per service added; 1 in 253 on a /24)
// comes first. Only the few services of step 3 can move when services
// come and go; a static address pins one for good.
func assignAddresses(units []*unit, b cnet.BridgeConfig) {
	used := map[netip.Addr][]*unit{}
	for _, u := range units {
		if len(u.errs) == 0 && u.svc.Net.Address.IsValid() {
			used[u.svc.Net.Address] = append(used[u.svc.Net.Address], u)
		}
	}
	for _, u := range units {
		if len(u.errs) > 0 {
			continue
		}
		if others := used[u.svc.Net.Address]; len(others) > 1 {
			var names []string
			for _, o := range others {
				if o != u {
					names = append(names, o.name)
				}
			}
			u.errorf("network.address", "address %s is also the static address of %s", u.svc.Net.Address, strings.Join(names, ", "))
		}
	}
	first, size := b.Gateway().Next(), poolSize(b.Subnet)
	var displaced []*unit
	for _, u := range units { // name order
		if len(u.errs) > 0 || !u.auto {
			continue
		}
		a := poolAddr(first, homeSlot(u.name, size))
		if used[a] != nil {
			displaced = append(displaced, u)
			continue
		}
		u.svc.Net.Address = a
		used[a] = []*unit{u}
	}
	for _, u := range displaced {
		home := homeSlot(u.name, size)
		for i := uint64(1); i < size; i++ {
			if a := poolAddr(first, (home+i)%size); used[a] == nil {
				u.svc.Net.Address = a
				used[a] = []*unit{u}
				break
			}
		}
		if !u.svc.Net.Address.IsValid() {
			u.errorf("network.address", "no free address left in %s for \"auto\"", b.Subnet)
		}
	}
}

// poolSize is how many service addresses an IPv4 subnet has: all but the
// network address, the gateway and the broadcast address.
func poolSize(p netip.Prefix) uint64 {
	return 1<<(32-p.Bits()) - 3
}

// homeSlot is a service's preferred place in a pool of size addresses:
// the first 8 bytes of SHA-256 over its name, modulo size. It depends on
// nothing but the name, so it is the same on every machine and release.
func homeSlot(name string, size uint64) uint64 {
	sum := sha256.Sum256([]byte("corral address " + name))
	return binary.BigEndian.Uint64(sum[:8]) % size
}

// poolAddr is the i-th address after first.
func poolAddr(first netip.Addr, i uint64) netip.Addr {
	a := first.As4()
	v := uint64(binary.BigEndian.Uint32(a[:])) + i
	binary.BigEndian.PutUint32(a[:], uint32(v))
	return netip.AddrFrom4(a)
}

// checkPortConflicts reports host ports published by more than one
// enabled service (a service that already has a problem takes no part).
// Each of them gets a problem on its own entry, naming the others.
func checkPortConflicts(units []*unit) {
	type owner struct {
		u   *unit
		key string
	}
	by := map[string][]owner{} // "8080/tcp" -> who publishes it
	var ok []*unit
	for _, u := range units {
		if len(u.errs) > 0 {
			continue
		}
		ok = append(ok, u)
		for _, p := range u.ports {
			hp := fmt.Sprintf("%d/%s", p.Host, p.Proto)
			by[hp] = append(by[hp], owner{u, p.key})
		}
	}
	for _, u := range ok {
		for _, p := range u.ports {
			hp := fmt.Sprintf("%d/%s", p.Host, p.Proto)
			var others []string
			for _, o := range by[hp] {
				if o.u != u {
					others = append(others, o.u.name+" ("+o.key+")")
				}
			}
			if len(others) > 0 {
				u.errorf(p.key, "host port %s is also published by %s", hp, strings.Join(others, ", "))
			}
		}
	}
}

// breakCycles disables every enabled service that lies on a cycle of
// requires and after edges between enabled services. Each gets one problem
// naming the shortest such cycle through it, on its key that starts it.
func breakCycles(units []*unit, byName map[string]*unit) {
	type found struct {
		u     *unit
		cycle []string
	}
	var cycles []found // collected first: disabling changes the graph
	for _, u := range units {
		if u.reason == "" {
			if c := shortestCycle(u, byName); c != nil {
				cycles = append(cycles, found{u, c})
			}
		}
	}
	for _, f := range cycles {
		i := slices.IndexFunc(f.u.deps, func(d dep) bool { return d.name == f.cycle[1] })
		f.u.reason = "dependency cycle: " + strings.Join(f.cycle, " -> ")
		f.u.errorf(f.u.deps[i].key, "%s", f.u.reason)
	}
}

// shortestCycle searches breadth-first, in key order, for a path of enabled
// services from u back to u, and returns it ("a", "b", "a"), or nil.
func shortestCycle(u *unit, byName map[string]*unit) []string {
	from := map[string]string{} // service -> the one it was reached from
	queue := []string{u.name}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range byName[cur].deps {
			if r := byName[d.name]; r == nil || r.reason != "" {
				continue
			}
			if d.name == u.name {
				cycle := []string{u.name}
				for n := cur; n != u.name; n = from[n] {
					cycle = append(cycle, n)
				}
				cycle = append(cycle, u.name)
				slices.Reverse(cycle)
				return cycle
			}
			if _, seen := from[d.name]; !seen {
				from[d.name] = cur
				queue = append(queue, d.name)
			}
		}
	}
	return nil
}

// disableDependants disables, transitively, every service that requires a
// disabled one. An after on a disabled service only orders, so it stays.
func disableDependants(units []*unit, byName map[string]*unit) {
	done := map[*unit]bool{}
	var resolve func(u *unit) string
	resolve = func(u *unit) string {
		if done[u] || u.reason != "" {
			return u.reason
		}
		done[u] = true // enabled services form no cycle now, but be safe
		for _, d := range u.deps {
			if r := byName[d.name]; d.requires && r != nil {
				if why := resolve(r); why != "" {
					u.reason = fmt.Sprintf("requires %s, which is disabled: %s", d.name, why)
					u.errorf(d.key, "%s", u.reason)
					break
				}
			}
		}
		return u.reason
	}
	for _, u := range units {
		resolve(u)
	}
}

// assignIDs gives each user-namespaced service its block of host ids: the
// slot a hash of its name picks, or the next free one (services in name
// order, so a collision is resolved the same way every time).
func assignIDs(units []*unit, p Userns) {
	if p.Slots == 0 || p.Size == 0 {
		return
	}
	taken := map[uint32]string{}
	for _, u := range units {
		if u.svc == nil || !u.userns {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(u.name))
		slot := h.Sum32() % p.Slots
		for i := uint32(0); i < p.Slots; i++ {
			s := (slot + i) % p.Slots
			if _, ok := taken[s]; !ok {
				taken[s] = u.name
				u.svc.Container.UserNS = &container.IDMap{HostID: p.FirstID + s*p.Size, Size: p.Size}
				break
			}
		}
		if u.svc.Container.UserNS == nil {
			u.errorf("container.user_namespace", "no free block of host ids left in [userns] (%d slots)", p.Slots)
		}
	}
}

// ParseService reads one service file's text on its own, as `corral run`
// does: every check of Load that needs only this file runs, but
// dependencies are not looked up (there are no other files) and a bridged
// service cannot get an "auto" address (there is no pool). name is the
// service's name and file what problems are reported against.
func ParseService(name, file, text string) (*Service, []*Error) {
	g := defaultGlobal("")
	u := &unit{fileState: fileState{file: file}, name: name}
	if !nameRE().MatchString(name) {
		u.errorf("", "invalid service name %q (%s)", name, nameRule)
		return nil, u.errs
	}
	decodeService(u, text, &g)
	if u.svc != nil && len(u.errs) == 0 {
		assignIDs([]*unit{u}, g.Userns)
	}
	if len(u.errs) > 0 {
		slices.SortStableFunc(u.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
		return nil, u.errs
	}
	return u.svc, nil
}
