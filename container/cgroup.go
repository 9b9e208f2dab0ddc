package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CgroupVersion is the cgroup hierarchy flavour of the machine.
type CgroupVersion uint8

// The two flavours.
const (
	CgroupV1 CgroupVersion = 1
	CgroupV2 CgroupVersion = 2
)

func (v CgroupVersion) String() string { return "v" + strconv.Itoa(int(v)) }

// Controllers corral uses. On v1 "freezer" is what makes a kill of the
// whole group reliable; it enforces nothing, so its absence only degrades.
var wantControllers = []string{"memory", "cpu", "pids"}

// CgroupOptions are the kernel paths, parameters so tests can point them at
// temporary directories.
type CgroupOptions struct {
	// Mount is where the cgroup file systems are mounted (/sys/fs/cgroup).
	Mount string
	// ProcSelf is /proc/self: its "cgroup" and "mountinfo" tell where we are.
	ProcSelf string
	// Prefix is the subtree corral creates under its own cgroup ("corral").
	Prefix string
	// Version forces a flavour instead of detecting it (0 = detect).
	Version CgroupVersion
}

// Cgroups creates and manages the cgroups of services. It is safe for
// concurrent use: it only reads its own fields after Open.
type Cgroups struct {
	Version CgroupVersion
	// v2: the directory under which service groups are created.
	v2root string
	// v2enable is the controllers written to the subtree's
	// cgroup.subtree_control ("+cpu +memory ...").
	v2enable string
	// v1: controller name → directory of corral's subtree in that
	// hierarchy. Controllers sharing a hierarchy share a directory.
	v1roots map[string]string
	// available controllers, for limits and for status output.
	available map[string]bool
	// rel is corral's subtree as /proc/<pid>/cgroup names it, under the
	// hierarchy key relKey ("" on v2, a controller on v1).
	rel, relKey string
}

// OpenCgroups detects the cgroup flavour and prepares corral's subtree:
// <own cgroup>/<prefix>. On v2 it enables the controllers it needs in
// cgroup.subtree_control, moving corral itself into a leaf first if its own
// cgroup is not the root (the "no internal processes" rule).
func OpenCgroups(o CgroupOptions) (*Cgroups, error) {
	if o.Mount == "" {
		o.Mount = "/sys/fs/cgroup"
	}
	if o.ProcSelf == "" {
		o.ProcSelf = "/proc/self"
	}
	if o.Prefix == "" {
		o.Prefix = "corral"
	}
	v := o.Version
	if v == 0 {
		v = detectVersion(o.Mount)
	}
	own, err := parseProcCgroup(filepath.Join(o.ProcSelf, "cgroup"))
	if err != nil {
		return nil, err
	}
	if v == CgroupV2 {
		return openV2(o, own[""])
	}
	mounts, err := parseCgroupMounts(filepath.Join(o.ProcSelf, "mountinfo"))
	if err != nil {
		return nil, err
	}
	return openV1(o, own, mounts)
}

func detectVersion(mount string) CgroupVersion {
	// cgroup2 mounted on /sys/fs/cgroup itself has cgroup.controllers at its
	// top; a v1 (or hybrid) layout is a tmpfs of per-controller mounts.
	if _, err := os.Stat(filepath.Join(mount, "cgroup.controllers")); err == nil {
		return CgroupV2
	}
	return CgroupV1
}

func openV2(o CgroupOptions, own string) (*Cgroups, error) {
	ownDir := filepath.Join(o.Mount, own)
	avail, err := readWords(filepath.Join(ownDir, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup controllers of %s: %w", ownDir, err)
	}
	c := &Cgroups{Version: CgroupV2, available: map[string]bool{}}
	var enable []string
	for _, name := range append(wantControllers, "io") {
		if avail[name] {
			c.available[name] = true
			enable = append(enable, "+"+name)
		}
	}
	if len(enable) > 0 {
		err := writeFile(filepath.Join(ownDir, "cgroup.subtree_control"), strings.Join(enable, " "))
		if errors.Is(err, syscallEBUSY) && own != "/" {
			// Our own group holds processes (us): move into a leaf first.
			leaf := filepath.Join(ownDir, o.Prefix+".supervisor")
			if err := os.MkdirAll(leaf, 0o755); err != nil {
				return nil, fmt.Errorf("create cgroup %s: %w", leaf, err)
			}
			if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
				return nil, fmt.Errorf("move corral into %s: %w", leaf, err)
			}
			err = writeFile(filepath.Join(ownDir, "cgroup.subtree_control"), strings.Join(enable, " "))
		}
		if err != nil {
			return nil, fmt.Errorf("enable controllers %s in %s: %w", strings.Join(enable, " "), ownDir, err)
		}
	}
	c.v2root = filepath.Join(ownDir, o.Prefix)
	c.rel = filepath.Join(own, o.Prefix)
	c.v2enable = strings.Join(enable, " ")
	if err := c.makeRoot(); err != nil {
		return nil, err
	}
	return c, nil
}

// makeRoot (re)creates corral's subtree: at start, and again if it has
// vanished since (removed by hand, or by another corral's shutdown), so
// that services do not fail for ever on a missing parent.
func (c *Cgroups) makeRoot() error {
	if c.Version != CgroupV2 {
		for _, dir := range c.v1roots {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
		}
		return nil
	}
	if err := os.MkdirAll(c.v2root, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", c.v2root, err)
	}
	if c.v2enable != "" {
		if err := writeFile(filepath.Join(c.v2root, "cgroup.subtree_control"), c.v2enable); err != nil {
			return fmt.Errorf("enable controllers in %s: %w", c.v2root, err)
		}
	}
	return nil
}

func openV1(o CgroupOptions, own map[string]string, mounts map[string]string) (*Cgroups, error) {
	c := &Cgroups{Version: CgroupV1, v1roots: map[string]string{}, available: map[string]bool{}}
	// freezer makes kills race-free; cpuacct gives CPU time for status and
	// metrics (a separate hierarchy on some hosts, co-mounted with cpu on
	// others: dirs() then counts the directory once).
	for _, name := range append(wantControllers, "freezer", "cpuacct") {
		mnt, ok := mounts[name]
		if !ok {
			continue
		}
		dir := filepath.Join(mnt, own[name], o.Prefix)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		c.v1roots[name] = dir
		c.available[name] = true
	}
	for _, k := range []string{"pids", "memory", "cpu", "freezer"} {
		if _, ok := c.v1roots[k]; ok {
			c.relKey, c.rel = k, filepath.Join(own[k], o.Prefix)
			break
		}
	}
	return c, nil
}

// Available reports whether a controller can be used.
func (c *Cgroups) Available(controller string) bool { return c.available[controller] }

// Controllers lists the controllers in use, in a fixed order.
func (c *Cgroups) Controllers() []string {
	var out []string
	for _, name := range []string{"memory", "cpu", "pids", "io", "freezer"} {
		if c.available[name] {
			out = append(out, name)
		}
	}
	return out
}

// Missing lists the controllers corral wants and does not have, for one
// loud line at boot.
func (c *Cgroups) Missing() []string {
	var out []string
	want := wantControllers
	if c.Version == CgroupV1 {
		want = append(want, "freezer")
	}
	for _, name := range want {
		if !c.available[name] {
			out = append(out, name)
		}
	}
	return out
}

// Root returns the directory of corral's subtree (on v1, in the pids
// hierarchy, or the first one there is).
func (c *Cgroups) Root() string {
	if c.Version == CgroupV2 {
		return c.v2root
	}
	for _, k := range []string{"pids", "memory", "cpu", "freezer"} {
		if d, ok := c.v1roots[k]; ok {
			return d
		}
	}
	return ""
}

// Lock claims corral's subtree for this supervisor: ErrLocked means a
// live corral uses it, and Sweep would kill that corral's services. One
// directory stands for the subtree (Root); on v1 every corral picks the
// same hierarchy for it.
func (c *Cgroups) Lock() error {
	return LockDir(c.Root())
}

// RemoveRoot removes corral's (empty) subtree at shutdown.
func (c *Cgroups) RemoveRoot() error {
	var errs []error
	for _, d := range c.dirs(c.v2root, c.v1roots) {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sweep kills every process left in corral's subtree and removes the
// groups there. It is for the start of a supervisor: none of its services
// runs yet, so whatever is in the subtree belongs to an earlier corral
// that was killed (a supervisor that is not PID 1 can die and leave its
// services running). On v2 one write to the subtree's cgroup.kill kills
// them all, nested groups included; on v1 each group is frozen and
// killed. It returns the names of the groups it removed.
func (c *Cgroups) Sweep() ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for _, d := range c.dirs(c.v2root, c.v1roots) {
		entries, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("list cgroup %s: %w", d, err)
		}
		for _, e := range entries {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				names = append(names, e.Name())
			}
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	var errs []error
	if c.Version == CgroupV2 {
		err := writeFile(filepath.Join(c.v2root, "cgroup.kill"), "1")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("kill what is left in %s: %w", c.v2root, err))
		}
	}
	for _, name := range names {
		g := &Group{c: c, fd: -1, relKey: c.relKey, rel: filepath.Join(c.rel, name)}
		if c.Version == CgroupV2 {
			g.v2dir = filepath.Join(c.v2root, name)
		} else {
			g.v1 = map[string]string{}
			for k, root := range c.v1roots {
				g.v1[k] = filepath.Join(root, name)
			}
		}
		if err := g.Kill(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("kill what is left in cgroup %s: %w", name, err))
		}
		if err := g.removeTree(); err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...)
}

// removeTree removes the group and any groups below it, deepest first.
func (g *Group) removeTree() error {
	var errs []error
	for _, d := range g.c.dirs(g.v2dir, g.v1) {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() && p != d {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			if err := removeCgroupDir(sub[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(append(errs, g.Remove())...)
}

// dirs returns the distinct directories: the v2 root, or each v1 hierarchy.
func (c *Cgroups) dirs(v2 string, v1 map[string]string) []string {
	if c.Version == CgroupV2 {
		return []string{v2}
	}
	seen := map[string]bool{}
	var out []string
	for _, k := range []string{"memory", "cpu", "pids", "freezer", "cpuacct"} {
		if d, ok := v1[k]; ok && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Group is the cgroup of one service instance.
type Group struct {
	c     *Cgroups
	v2dir string
	v1    map[string]string // controller → dir
	fd    int               // v2: directory fd for CLONE_INTO_CGROUP
	// As /proc/<pid>/cgroup shows the group (see Cgroups.rel).
	rel, relKey string
}

// Create makes the group for a service and writes its limits. A limit whose
// controller is missing fails with ErrControllerUnavailable.
func (c *Cgroups) Create(name string, l Limits) (g *Group, err error) {
	need := map[string]bool{"memory": l.MemoryMax > 0, "cpu": l.CPU > 0, "pids": l.PidsMax > 0}
	for _, k := range []string{"memory", "cpu", "pids"} {
		if need[k] && !c.available[k] {
			return nil, fmt.Errorf("%s limit for %s: %w: %s", k, name, ErrControllerUnavailable, k)
		}
	}
	g = &Group{c: c, fd: -1, relKey: c.relKey, rel: filepath.Join(c.rel, name)}
	defer func() {
		if err != nil {
			_ = g.Remove()
		}
	}()
	if c.Version == CgroupV2 {
		g.v2dir = filepath.Join(c.v2root, name)
		if err := c.mkdirFresh(g.v2dir); err != nil {
			return g, err
		}
		if err := g.writeV2Limits(name, l); err != nil {
			return g, err
		}
		fd, err := openDir(g.v2dir)
		if err != nil {
			return g, fmt.Errorf("open cgroup %s: %w", g.v2dir, err)
		}
		g.fd = fd
		return g, nil
	}
	g.v1 = map[string]string{}
	for k, root := range c.v1roots {
		g.v1[k] = filepath.Join(root, name)
	}
	for _, d := range c.dirs("", g.v1) {
		if err := c.mkdirFresh(d); err != nil {
			return g, err
		}
	}
	return g, g.writeV1Limits(name, l)
}

// mkdirFresh creates a cgroup directory; one left over from an earlier
// instance (or an earlier corral) is reused. A missing parent (corral's
// subtree) is made again.
func (c *Cgroups) mkdirFresh(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrNotExist) {
		if rerr := c.makeRoot(); rerr != nil {
			return rerr
		}
		err = os.Mkdir(dir, 0o755)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return nil
}

func (g *Group) writeV2Limits(name string, l Limits) error {
	w := func(file, val string) error {
		if err := writeFile(filepath.Join(g.v2dir, file), val); err != nil {
			return fmt.Errorf("write %s=%s for %s: %w", file, val, name, err)
		}
		return nil
	}
	if l.MemoryMax > 0 {
		if err := w("memory.max", strconv.FormatInt(l.MemoryMax, 10)); err != nil {
			return err
		}
		// Without this, a machine with swap would let the service swap
		// instead of hitting its limit.
		if _, err := os.Stat(filepath.Join(g.v2dir, "memory.swap.max")); err == nil {
			if err := w("memory.swap.max", "0"); err != nil {
				return err
			}
		}
	}
	if l.CPU > 0 {
		if err := w("cpu.max", fmt.Sprintf("%d %d", l.CPUQuota().Microseconds(), CPUPeriod.Microseconds())); err != nil {
			return err
		}
	}
	if l.PidsMax > 0 {
		if err := w("pids.max", strconv.FormatInt(l.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) writeV1Limits(name string, l Limits) error {
	w := func(ctrl, file, val string) error {
		if err := writeFile(filepath.Join(g.v1[ctrl], file), val); err != nil {
			return fmt.Errorf("write %s=%s for %s: %w", file, val, name, err)
		}
		return nil
	}
	if l.MemoryMax > 0 {
		if err := w("memory", "memory.limit_in_bytes", strconv.FormatInt(l.MemoryMax, 10)); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(g.v1["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			if err := w("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(l.MemoryMax, 10)); err != nil {
				return err
			}
		}
	}
	if l.CPU > 0 {
		if err := w("cpu", "cpu.cfs_period_us", strconv.FormatInt(CPUPeriod.Microseconds(), 10)); err != nil {
			return err
		}
		if err := w("cpu", "cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuota().Microseconds(), 10)); err != nil {
			return err
		}
	}
	if l.PidsMax > 0 {
		if err := w("pids", "pids.max", strconv.FormatInt(l.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}

// FD is the v2 directory fd for CLONE_INTO_CGROUP, or -1 on v1.
func (g *Group) FD() int { return g.fd }

// Path is the group's directory (v2), or its directory in the pids (else
// memory) hierarchy on v1: what shows in /proc/<pid>/cgroup.
func (g *Group) Path() string {
	if g.c.Version == CgroupV2 {
		return g.v2dir
	}
	for _, k := range []string{"pids", "memory", "cpu", "freezer"} {
		if d, ok := g.v1[k]; ok {
			return d
		}
	}
	return ""
}

// Dir returns the group's directory for a controller ("" if absent).
func (g *Group) Dir(controller string) string {
	if g.c.Version == CgroupV2 {
		return g.v2dir
	}
	return g.v1[controller]
}

// AddProc moves pid into the group. Only v1 needs it: on v2 the child is
// born inside (CLONE_INTO_CGROUP).
func (g *Group) AddProc(pid int) error {
	if g.c.Version == CgroupV2 {
		return nil
	}
	for _, d := range g.c.dirs("", g.v1) {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("move pid %d into %s: %w", pid, d, err)
		}
	}
	return nil
}

// Procs lists the pids in the group.
func (g *Group) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(g.Path(), "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Kill sends SIGKILL to every process in the group, including ones that
// left the service's process tree (setsid, double fork). v2 uses
// cgroup.kill; v1 freezes the group first so nothing can fork while we
// kill, then thaws it so the kills are delivered.
func (g *Group) Kill() error {
	if g.c.Version == CgroupV2 {
		err := writeFile(filepath.Join(g.v2dir, "cgroup.kill"), "1")
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		// Kernel before 5.14: fall through to the kill loop.
		return g.killLoop("")
	}
	return g.killLoop(g.v1["freezer"])
}

func (g *Group) killLoop(freezer string) error {
	if freezer != "" {
		if err := writeFile(filepath.Join(freezer, "freezer.state"), "FROZEN"); err == nil {
			defer func() { _ = writeFile(filepath.Join(freezer, "freezer.state"), "THAWED") }()
			for i := 0; i < 100; i++ {
				b, _ := os.ReadFile(filepath.Join(freezer, "freezer.state"))
				if strings.TrimSpace(string(b)) == "FROZEN" {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	for i := 0; i < 100; i++ {
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = killPid(p)
		}
		if freezer != "" {
			return nil // the thaw in the defer delivers them all
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("processes keep appearing in the cgroup")
}

// OOMKills returns how many processes the kernel's OOM killer killed in
// this group.
func (g *Group) OOMKills() (uint64, error) {
	if g.c.Version == CgroupV2 {
		return readKeyed(filepath.Join(g.v2dir, "memory.events"), "oom_kill")
	}
	d := g.v1["memory"]
	if d == "" {
		return 0, nil
	}
	return readKeyed(filepath.Join(d, "memory.oom_control"), "oom_kill")
}

// MemoryCurrent returns the memory charged to the group, in bytes.
func (g *Group) MemoryCurrent() (int64, error) {
	var file string
	if g.c.Version == CgroupV2 {
		file = filepath.Join(g.v2dir, "memory.current")
	} else if d := g.v1["memory"]; d != "" {
		file = filepath.Join(d, "memory.usage_in_bytes")
	} else {
		return 0, ErrControllerUnavailable
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// CPUUsage returns the CPU time the group has used (v2 cpu.stat
// usage_usec; v1 cpuacct.usage).
func (g *Group) CPUUsage() (time.Duration, error) {
	if g.c.Version == CgroupV2 {
		us, err := readKeyed(filepath.Join(g.v2dir, "cpu.stat"), "usage_usec")
		return time.Duration(us) * time.Microsecond, err
	}
	d := g.v1["cpuacct"]
	if d == "" {
		return 0, ErrControllerUnavailable
	}
	b, err := os.ReadFile(filepath.Join(d, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns), err
}

// Remove deletes the group. Processes that are still exiting keep it busy
// for a moment, so it retries for up to two seconds.
func (g *Group) Remove() error {
	if g.fd >= 0 {
		closeFD(g.fd)
		g.fd = -1
	}
	var errs []error
	for _, d := range g.c.dirs(g.v2dir, g.v1) {
		if d == "" {
			continue
		}
		if err := removeCgroupDir(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroupDir removes one cgroup directory, retrying while exiting
// processes keep it busy.
func removeCgroupDir(d string) error {
	var err error
	for delay := 100 * time.Microsecond; ; delay *= 2 {
		err = os.Remove(d)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscallEBUSY) || delay > time.Second {
			break
		}
		time.Sleep(delay)
	}
	return fmt.Errorf("remove cgroup %s: %w", d, err)
}

// parseProcCgroup reads /proc/<pid>/cgroup into controller → path. The v2
// entry ("0::/path") is under the key "".
func parseProcCgroup(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return parseProcCgroupData(b), nil
}

func parseProcCgroupData(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// parseCgroupMounts reads mountinfo and returns controller → mount point
// for every cgroup v1 hierarchy.
func parseCgroupMounts(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return parseCgroupMountsData(b), nil
}

func parseCgroupMountsData(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 || rf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(rf[2], ",") {
			switch opt {
			case "rw", "ro":
				continue
			}
			if _, dup := out[opt]; !dup {
				out[opt] = unescapeMount(lf[4])
			}
		}
	}
	return out
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readWords(file string) (map[string]bool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, w := range strings.Fields(string(b)) {
		out[w] = true
	}
	return out, nil
}

// readKeyed reads "key value" lines (memory.events, memory.oom_control).
func readKeyed(file, key string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, nil
}

// Contains reports whether pid (in the caller's pid namespace) is in the
// group or below it, from /proc/<pid>/cgroup. A pid that no longer exists
// returns an error that matches fs.ErrNotExist.
func (g *Group) Contains(pid int) (bool, error) {
	own, err := parseProcCgroup(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false, err
	}
	key, rel := g.relKey, g.rel
	got, ok := own[key]
	if !ok {
		return false, nil
	}
	return got == rel || strings.HasPrefix(got, rel+"/"), nil
}

// checkLimits reads the limits back from the group's files.
func (g *Group) checkLimits(l Limits) []string {
	var out []string
	read := func(ctrl, file string) (string, bool) {
		d := g.Dir(ctrl)
		if d == "" {
			return "", false
		}
		b, err := os.ReadFile(filepath.Join(d, file))
		if err != nil {
			return "", false
		}
		return strings.TrimSpace(string(b)), true
	}
	pageRound := func(n int64) int64 { return n &^ 4095 } // the kernel keeps whole pages
	if l.MemoryMax > 0 {
		file := "memory.max"
		if g.c.Version == CgroupV1 {
			file = "memory.limit_in_bytes"
		}
		v, ok := read("memory", file)
		n, _ := strconv.ParseInt(v, 10, 64)
		if !ok || (n != l.MemoryMax && n != pageRound(l.MemoryMax)) {
			out = append(out, fmt.Sprintf("%s is %q, not %d", file, v, l.MemoryMax))
		}
	}
	if l.PidsMax > 0 {
		if v, ok := read("pids", "pids.max"); !ok || v != strconv.FormatInt(l.PidsMax, 10) {
			out = append(out, fmt.Sprintf("pids.max is %q, not %d", v, l.PidsMax))
		}
	}
	if l.CPU > 0 {
		want := strconv.FormatInt(l.CPUQuota().Microseconds(), 10)
		if g.c.Version == CgroupV2 {
			if v, ok := read("cpu", "cpu.max"); !ok || strings.Fields(v + " ")[0] != want {
				out = append(out, fmt.Sprintf("cpu.max is %q, not %s", v, want))
			}
		} else if v, ok := read("cpu", "cpu.cfs_quota_us"); !ok || v != want {
			out = append(out, fmt.Sprintf("cpu.cfs_quota_us is %q, not %s", v, want))
		}
	}
	return out
}

// Chown hands the group to a user namespace's root: its directory and the
// files a delegatee writes (cgroup v2's delegation rules; the same files
// on v1).
func (g *Group) Chown(uid, gid int) error {
	for _, d := range g.c.dirs(g.v2dir, g.v1) {
		if d == "" {
			continue
		}
		for _, f := range []string{"", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "tasks"} {
			err := os.Lchown(filepath.Join(d, f), uid, gid)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
