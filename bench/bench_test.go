//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/testutil"
	"github.com/corral-init/corral/supervisor/api"
)

// row is one line of the results table.
type row struct {
	Name   string
	Unit   string
	Corral float64
	Refs   []ref
	Goal   string
	Met    string // "yes", "no", or "" when there is no goal
	Note   string
}

type ref struct {
	Name  string
	Value float64
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func quick() bool { return os.Getenv("BENCH_QUICK") != "" }

func want(name string) bool {
	only := os.Getenv("BENCH_ONLY")
	return only == "" || strings.Contains(","+only+",", ","+name+",")
}

func ensurePackages(t *testing.T, pkgs map[string]string) {
	var missing []string
	for bin, pkg := range pkgs {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) == 0 {
		return
	}
	t.Logf("installing %v", missing)
	cmd := exec.Command("apt-get", append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get install %v: %v\n%s", missing, err, out)
	}
}

// writeServices writes a corral configuration of n identical services.
func writeServices(t *testing.T, n int, mode string, body string) string {
	svcs := map[string]string{}
	for i := 0; i < n; i++ {
		svcs[fmt.Sprintf("s%03d", i)] = body + "[network]\nmode = \"" + mode + "\"\n"
	}
	return testutil.WriteConfig(t, "[network]\nsubnet = \"10.77.0.0/16\"\n", svcs)
}

func allRunning(r api.StatusReply) bool {
	for _, s := range r.Services {
		if s.State.String() != "running" {
			return false
		}
	}
	return len(r.Services) > 0
}

// pss sums the proportional set size (KiB) of the given processes.
func pss(pids ...int) float64 {
	var total float64
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
				n, _ := strconv.ParseFloat(f[1], 64)
				total += n
			}
		}
	}
	return total
}

// children lists the pids whose parent is ppid and whose command is comm.
func children(ppid int, comm string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if l < 0 || r < 0 {
			continue
		}
		f := strings.Fields(s[r+1:])
		if len(f) > 1 && (comm == "" || s[l+1:r] == comm) {
			if pp, _ := strconv.Atoi(f[1]); pp == ppid {
				out = append(out, pid)
			}
		}
	}
	return out
}

func waitFor(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// sv is a process supervision tree of s6 or runit over service dirs.
type sv struct {
	cmd  *exec.Cmd
	dir  string
	name string
}

// startSupervisor starts s6-svscan or runsvdir over n services that run
// script (an sh script body).
func startSupervisor(t *testing.T, kind string, n int, script string) *sv {
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, fmt.Sprintf("s%03d", i))
		os.MkdirAll(d, 0o755)
		if err := os.WriteFile(filepath.Join(d, "run"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := map[string]string{"s6": "s6-svscan", "runit": "runsvdir"}[kind]
	cmd := exec.Command(bin, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	s := &sv{cmd: cmd, dir: dir, name: kind}
	t.Cleanup(s.stop)
	return s
}

func (s *sv) stop() {
	if s.cmd.Process == nil {
		return
	}
	// The whole process group: the scanner and its supervisors. s6-supervise
	// starts each service in a session of its own, out of that group: those
	// are killed by pid, listed before their supervisors die.
	services := s.servicePids()
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	for _, p := range services {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = s.cmd.Wait()
}

// supervisors lists the per-service supervisor processes.
func (s *sv) supervisors() []int {
	return children(s.cmd.Process.Pid, map[string]string{"s6": "s6-supervise", "runit": "runsv"}[s.name])
}

func (s *sv) servicePids() []int {
	var out []int
	for _, p := range s.supervisors() {
		out = append(out, children(p, "")...)
	}
	return out
}

func TestBench(t *testing.T) {
	testutil.RequireRoot(t)
	ensurePackages(t, map[string]string{"crun": "crun", "runc": "runc", "s6-svscan": "s6", "runsvdir": "runit", "busybox": "busybox-static"})
	// crun refuses this host's hybrid cgroup layout unless unified is gone
	// from its view: the Makefile runs this in a private mount namespace.
	_ = unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH)

	var rows []row
	for _, b := range []struct {
		name string
		fn   func(*testing.T) []row
	}{
		{"oneshot", benchOneshot},
		{"network", benchNetwork},
		{"scale", benchScale},
		{"footprint", benchFootprint},
		{"restart", benchRestart},
		{"idle", benchIdle},
		{"boot", benchBoot},
		{"size", benchSize},
	} {
		if !want(b.name) {
			continue
		}
		t.Logf("== %s", b.name)
		rows = append(rows, b.fn(t)...)
	}
	table := render(rows)
	fmt.Print(table)
	if out := os.Getenv("BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(header()+table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func render(rows []row) string {
	var b strings.Builder
	b.WriteString("| benchmark | corral | reference (same run) | ratio | goal | met |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		var refs, ratios []string
		for _, x := range r.Refs {
			refs = append(refs, fmt.Sprintf("%s %s", x.Name, num(x.Value, r.Unit)))
			if x.Value > 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f× %s", r.Corral/x.Value, x.Name))
			}
		}
		name := r.Name
		if r.Note != "" {
			name += " (" + r.Note + ")"
		}
		value := num(r.Corral, r.Unit)
		if strings.HasPrefix(r.Note, "skipped") {
			value = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", name, value, orDash(strings.Join(refs, ", ")),
			orDash(strings.Join(ratios, ", ")), orDash(r.Goal), orDash(r.Met))
	}
	return b.String()
}

func num(v float64, unit string) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func header() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	cg := "v1 (hybrid)"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = "v2"
	}
	mem, _ := os.ReadFile("/proc/meminfo")
	memLine := strings.SplitN(string(mem), "\n", 2)[0]
	goVer, _ := exec.Command("go", "version").Output()
	return fmt.Sprintf(`# corral benchmarks

Measured %s with `+"`make bench`"+`. Machine: %s %s, %d CPUs, %s, cgroup %s, %s.
Medians; references measured in the same run, interleaved. The machine is
shared and noisy: trust the ratios, not the absolute times.

`, time.Now().UTC().Format("2006-01-02 15:04 MST"), unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]),
		runtime.NumCPU(), strings.Join(strings.Fields(memLine), " "), cg, strings.TrimSpace(string(goVer)))
}

// payloadDir is where services see the payload (see the e2e tests).
const payloadDir = "/run/corral-test"

func payloadMount(t *testing.T) string {
	_, payload := testutil.Binaries(t)
	return fmt.Sprintf("[[container.mounts]]\nsource = %q\ntarget = %q\n", filepath.Dir(payload), payloadDir)
}

func benchRestart(t *testing.T) []row {
	n := 30
	if quick() {
		n = 8
	}
	_, payload := testutil.Binaries(t)
	stampDir, err := os.MkdirTemp("/var/tmp", "corral-bench-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stampDir)
	readStamp := func(f string) int64 {
		b, _ := os.ReadFile(f)
		v, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return v
	}
	// One kill: t0 just before SIGKILL, then the new process's own stamp.
	measure := func(file string, pid func() int) float64 {
		prev := readStamp(file)
		p := pid()
		t0 := monotonic()
		_ = syscall.Kill(p, syscall.SIGKILL)
		if err := waitFor("a restart", 5*time.Second, func() bool { return readStamp(file) != prev }); err != nil {
			t.Fatal(err)
		}
		return float64(readStamp(file)-t0) / 1e6
	}

	// corral: stable_after 1s, so a run of 1.2s restarts at once.
	cfile := filepath.Join(stampDir, "corral")
	dir := testutil.WriteConfig(t, "", map[string]string{"stamp": fmt.Sprintf(`exec = ["%s/corral-payload", "stamp", "/run/stamp/corral"]
stable_after = "1s"
[network]
mode = "none"
[[container.mounts]]
source = %q
target = "/run/stamp"
read_only = false
`, payloadDir, stampDir) + payloadMount(t)})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "stamp running", allRunning)
	corralPid := func() int {
		procs := testutil.CgroupDirs(c.Prefix)
		for _, d := range procs {
			b, err := os.ReadFile(filepath.Join(d, "stamp", "cgroup.procs"))
			if err == nil {
				for _, f := range strings.Fields(string(b)) {
					p, _ := strconv.Atoi(f)
					return p
				}
			}
		}
		return 0
	}
	s6 := startSupervisor(t, "s6", 1, "exec "+payload+" stamp "+filepath.Join(stampDir, "s6"))
	runit := startSupervisor(t, "runit", 1, "exec "+payload+" stamp "+filepath.Join(stampDir, "runit"))
	first := func(s *sv) func() int {
		return func() int {
			var ps []int
			_ = waitFor(s.name+" service", 5*time.Second, func() bool { ps = s.servicePids(); return len(ps) > 0 })
			return ps[0]
		}
	}
	_ = waitFor("stamps", 10*time.Second, func() bool {
		return readStamp(cfile) > 0 && readStamp(filepath.Join(stampDir, "s6")) > 0 && readStamp(filepath.Join(stampDir, "runit")) > 0
	})
	var co, so, ru []float64
	for i := 0; i < n; i++ {
		time.Sleep(1200 * time.Millisecond) // past every stability window
		co = append(co, measure(cfile, corralPid))
		so = append(so, measure(filepath.Join(stampDir, "s6"), first(s6)))
		ru = append(ru, measure(filepath.Join(stampDir, "runit"), first(runit)))
	}
	m := median(co)
	return []row{{Name: "restart latency: kill → new process running", Unit: "ms", Corral: m,
		Refs: []ref{{"runit", median(ru)}, {"s6", median(so)}}, Goal: "≤ 3 ms", Met: met(m <= 3),
		Note: "corral's includes a fresh container: namespaces, cgroup, mounts"}}
}

func benchFootprint(t *testing.T) []row {
	var rows []row
	for _, n := range []int{10, 100} {
		body := "exec = [\"/bin/busybox\", \"sleep\", \"3600\"]\n"
		c := testutil.StartCorral(t, writeServices(t, n, "none", body))
		c.WaitFor(60*time.Second, "all running", allRunning)
		time.Sleep(time.Second)
		corral := pss(c.Pid) / 1024
		s6 := startSupervisor(t, "s6", n, "exec /bin/busybox sleep 3600")
		runit := startSupervisor(t, "runit", n, "exec /bin/busybox sleep 3600")
		_ = waitFor("s6 and runit services", 30*time.Second, func() bool {
			return len(s6.servicePids()) == n && len(runit.servicePids()) == n
		})
		time.Sleep(time.Second)
		s6m := pss(append(s6.supervisors(), s6.cmd.Process.Pid)...) / 1024
		rum := pss(append(runit.supervisors(), runit.cmd.Process.Pid)...) / 1024
		r := row{Name: fmt.Sprintf("memory (PSS) supervising %d services", n), Unit: "MB", Corral: corral,
			Refs: []ref{{"s6", s6m}, {"runit", rum}}}
		if n == 100 {
			r.Goal, r.Met = "≤ 8 MB", met(corral <= 8)
		}
		rows = append(rows, r)
		_ = c.Stop(60 * time.Second)
		s6.stop()
		runit.stop()
	}
	return rows
}

func benchIdle(t *testing.T) []row {
	d := 60 * time.Second
	if quick() {
		d = 10 * time.Second
	}
	c := testutil.StartCorral(t, writeServices(t, 20, "none", "exec = [\"/bin/busybox\", \"sleep\", \"3600\"]\n"))
	c.WaitFor(30*time.Second, "all running", allRunning)
	time.Sleep(3 * time.Second)
	switches := func() (n int) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", c.Pid))
		for _, tk := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", c.Pid, tk.Name()))
			for _, line := range strings.Split(string(b), "\n") {
				if f := strings.Fields(line); len(f) == 2 && (f[0] == "voluntary_ctxt_switches:" || f[0] == "nonvoluntary_ctxt_switches:") {
					v, _ := strconv.Atoi(f[1])
					n += v
				}
			}
		}
		return n
	}
	cpu := func() float64 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Pid))
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
		u, _ := strconv.ParseFloat(f[11], 64)
		s, _ := strconv.ParseFloat(f[12], 64)
		return (u + s) * 10 // clock ticks (100/s) to ms
	}
	w0, c0 := switches(), cpu()
	time.Sleep(d)
	w1, c1 := switches(), cpu()
	perMin := float64(w1-w0) / d.Minutes()
	return []row{
		{Name: "idle wakeups, 20 idle services", Unit: "/min", Corral: perMin, Goal: "0 periodic timers", Met: met(perMin <= 1),
			Note: "context switches of every corral thread; the Go runtime forces a GC every 2 min"},
		{Name: "idle CPU, 20 idle services", Unit: "ms/min", Corral: (c1 - c0) / d.Minutes()},
	}
}

func benchScale(t *testing.T) []row {
	n := 200
	if quick() {
		n = 40
	}
	// corral: n bridged services, from its start to all running, then the
	// shutdown, both from corral's own log timestamps. stop_signal is
	// SIGKILL, as `crun delete -f` sends: busybox sleep as a container's
	// PID 1 ignores SIGTERM, and waiting out stop_timeout measures nothing.
	c := testutil.StartCorral(t, writeServices(t, n, "bridge", "exec = [\"/bin/busybox\", \"sleep\", \"3600\"]\nstop_signal = \"SIGKILL\"\n"))
	c.WaitFor(120*time.Second, "all running", allRunning)
	up := logSpan(t, c.Log(), `"to":"starting"`, `"to":"running"`)
	if err := c.Stop(120 * time.Second); err != nil {
		t.Fatal(err)
	}
	down := logSpan(t, c.Log(), "shutting down", "all services stopped")

	crunUp, crunDown := crunScale(t, n)
	return []row{
		{Name: fmt.Sprintf("%d bridged services up (all running)", n), Unit: "s", Corral: up, Refs: []ref{{"crun ×4", crunUp}}, Goal: "≤ 1 s", Met: met(up <= 1),
			Note: "crun: no network, 4 at a time"},
		{Name: fmt.Sprintf("%d bridged services down", n), Unit: "s", Corral: down, Refs: []ref{{"crun ×4", crunDown}}, Goal: "≤ 0.5 s", Met: met(down <= 0.5),
			Note: "both SIGKILL"},
	}
}

// logSpan is the time from the first log line containing from to the last
// containing to, in seconds, from corral's JSON "time" fields.
func logSpan(t *testing.T, log, from, to string) float64 {
	var first, last time.Time
	for _, line := range strings.Split(log, "\n") {
		var m struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if strings.Contains(line, from) && first.IsZero() {
			first = m.Time
		}
		if strings.Contains(line, to) {
			last = m.Time
		}
	}
	if first.IsZero() || last.IsZero() {
		t.Fatalf("no %q .. %q in the log", from, to)
	}
	return last.Sub(first).Seconds()
}

// bundle makes an OCI bundle running argv in a busybox root, with the
// same limits corral's services get in the benchmarks.
func bundle(t *testing.T, argv []string) string {
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	bb, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(root, "bin", "true"))
	os.Symlink("busybox", filepath.Join(root, "bin", "sleep"))
	for _, d := range []string{"proc", "dev", "sys", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	cmd := exec.Command("crun", "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crun spec: %v\n%s", err, out)
	}
	var spec map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["args"], proc["terminal"] = argv, false
	spec["root"] = map[string]any{"path": "rootfs", "readonly": true}
	linux := spec["linux"].(map[string]any)
	linux["resources"] = map[string]any{"memory": map[string]any{"limit": 64 << 20}, "pids": map[string]any{"limit": 64}}
	b, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	return dir
}

// crunScale starts n detached crun containers, four at a time, then kills
// and deletes them: the times in seconds.
func crunScale(t *testing.T, n int) (float64, float64) {
	b := bundle(t, []string{"/bin/sleep", "3600"})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("corral-bench-%d-%d", os.Getpid(), i)
	}
	par := func(fn func(id string) error) float64 {
		start := time.Now()
		ch := make(chan string)
		errc := make(chan error, n)
		for w := 0; w < 4; w++ {
			go func() {
				for id := range ch {
					errc <- fn(id)
				}
			}()
		}
		for _, id := range ids {
			ch <- id
		}
		close(ch)
		for range ids {
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}
		return time.Since(start).Seconds()
	}
	t.Cleanup(func() {
		for _, id := range ids {
			_ = exec.Command("crun", "delete", "-f", id).Run()
		}
	})
	up := par(func(id string) error {
		// Not CombinedOutput: the detached container inherits crun's
		// stdout and would hold the pipe (and this wait) for an hour.
		out, err := os.CreateTemp(t.TempDir(), "crun-run-")
		if err != nil {
			return err
		}
		defer out.Close()
		cmd := exec.Command("crun", "run", "-d", "--bundle", b, id)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			msg, _ := os.ReadFile(out.Name())
			return fmt.Errorf("crun run %s: %v: %s", id, err, msg)
		}
		return nil
	})
	down := par(func(id string) error {
		if out, err := exec.Command("crun", "delete", "-f", id).CombinedOutput(); err != nil {
			return fmt.Errorf("crun delete %s: %v: %s", id, err, out)
		}
		return nil
	})
	return up, down
}

func benchOneshot(t *testing.T) []row {
	bin, _ := testutil.Binaries(t)
	if out, err := exec.Command(bin, "run", "--help").CombinedOutput(); err != nil && !strings.Contains(string(out), "usage") {
		return []row{{Name: "one-shot start → exit", Note: "skipped: this corral has no `corral run`"}}
	}
	n := 40
	if quick() {
		n = 10
	}
	b := bundle(t, []string{"/bin/true"})
	run := map[string]func() error{
		"corral": func() error {
			return exec.Command(bin, "run", "--memory", "64M", "--pids", "64", "--network", "none", "--", "/bin/true").Run()
		},
		"crun": func() error {
			return exec.Command("crun", "run", "--bundle", b, fmt.Sprintf("corral-bench-c%d", os.Getpid())).Run()
		},
		"runc": func() error {
			return exec.Command("runc", "run", "--bundle", b, fmt.Sprintf("corral-bench-r%d", os.Getpid())).Run()
		},
	}
	var rows []row
	for _, idle := range []time.Duration{0, 200 * time.Millisecond} {
		times := map[string][]float64{}
		for i := 0; i < n; i++ {
			for _, name := range []string{"corral", "crun", "runc"} {
				time.Sleep(idle)
				start := time.Now()
				if err := run[name](); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				times[name] = append(times[name], float64(time.Since(start).Microseconds())/1000)
			}
		}
		m, crun := median(times["corral"]), median(times["crun"])
		label := "warm"
		if idle > 0 {
			label = "after 0.2 s idle"
		}
		r := row{Name: "one-shot /bin/true, 5 namespaces, memory+pids limits, " + label, Unit: "ms", Corral: m,
			Refs: []ref{{"crun", crun}, {"runc", median(times["runc"])}}}
		if idle == 0 { // the goal is for the warm start only
			r.Goal, r.Met = "≤ 0.5× crun warm", met(m <= crun/2)
		}
		rows = append(rows, r)
	}
	return rows
}

func benchNetwork(t *testing.T) []row {
	netTest := os.Getenv("BENCH_NET_TEST")
	if netTest == "" {
		return []row{{Name: "bridged network up", Note: "skipped: BENCH_NET_TEST not set (make bench sets it)"}}
	}
	cmd := exec.Command(netTest, "-test.run", "XXX", "-test.bench", "BenchmarkAttach|BenchmarkServiceNetwork", "-test.benchtime", "30x", "-test.count", "3")
	cmd.Dir = filepath.Join("..", "net")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("net benchmark: %v\n%s", err, out)
	}
	// vals["BenchmarkAttach/corral attach-ns"] = milliseconds, one per -test.count.
	vals := map[string][]float64{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		for i := 2; i+1 < len(f); i += 2 {
			if strings.HasSuffix(f[i+1], "-ns") && f[i+1] != "ns/op" {
				v, _ := strconv.ParseFloat(f[i], 64)
				vals[name+" "+f[i+1]] = append(vals[name+" "+f[i+1]], v/1e6)
			}
		}
	}
	m := func(k string) float64 { return median(vals[k]) }
	attach := m("BenchmarkAttach/corral attach-ns")
	up, upNext := m("BenchmarkServiceNetwork/corral up-ns"), m("BenchmarkServiceNetwork/corral-next up-ns")
	return []row{
		{Name: "bridged network up: netns + veth + address + route + up", Unit: "ms", Corral: attach,
			Refs: []ref{{"ip commands", m("BenchmarkAttach/ip attach-ns")}}, Goal: "≤ 5 ms", Met: met(attach > 0 && attach <= 5)},
		{Name: "bridged service's whole network up (+ forwarding, hosts, resolv.conf), first service", Unit: "ms", Corral: up,
			Refs: []ref{{"ip + sysctl commands", m("BenchmarkServiceNetwork/ip up-ns")}}, Goal: "≤ 5 ms", Met: met(up > 0 && up <= 5)},
		{Name: "the same with another bridged service running", Unit: "ms", Corral: upNext,
			Refs: []ref{{"ip + sysctl commands", m("BenchmarkServiceNetwork/ip up-ns")}}, Goal: "≤ 5 ms", Met: met(upNext > 0 && upNext <= 5)},
		{Name: "bridged service's network down (netns gone, veth removed, forwarding released)", Unit: "ms", Corral: m("BenchmarkServiceNetwork/corral down-ns"),
			Refs: []ref{{"ip + sysctl commands", m("BenchmarkServiceNetwork/ip down-ns")}}, Note: "mostly the kernel's netns teardown"},
	}
}

func benchBoot(t *testing.T) []row {
	log := filepath.Join("..", "build", "qemu", "logs", "virt-initramfs.log")
	b, err := os.ReadFile(log)
	if err != nil {
		return []row{{Name: "boot (qemu virt)", Note: "skipped: run make qemu-test first"}}
	}
	var kernel, corral, ready float64 = -1, -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		at, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		rest := strings.Join(f[1:], " ")
		switch {
		case kernel < 0 && strings.HasPrefix(rest, "["):
			kernel = at
		case corral < 0 && strings.Contains(rest, `"mode":"machine"`):
			corral = at
		case strings.Contains(rest, `check: web page fetched across the bridge`):
			ready = at
		}
	}
	if kernel < 0 || corral < 0 || ready < 0 {
		return []row{{Name: "boot (qemu virt)", Note: "skipped: the log has no full boot"}}
	}
	return []row{
		{Name: "boot, qemu virt (TCG): kernel's first line → corral", Unit: "s", Corral: corral - kernel},
		{Name: "boot, qemu virt (TCG): corral → every example service up", Unit: "s", Corral: ready - corral, Note: "check fetched web's page"},
	}
}

func benchSize(t *testing.T) []row {
	out := filepath.Join(t.TempDir(), "corral-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "github.com/corral-init/corral/init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build arm64: %v\n%s", err, b)
	}
	st, _ := os.Stat(out)
	return []row{{Name: "binary size, static arm64 (-s -w)", Unit: "MB", Corral: float64(st.Size()) / (1 << 20)}}
}

func TestMain(m *testing.M) { testutil.Main(m) }
