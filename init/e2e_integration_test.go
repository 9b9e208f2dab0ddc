//go:build integration

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/corral-init/corral/internal/testutil"
	"github.com/corral-init/corral/supervisor/api"
)

// These tests run the real corral binary as PID 1 of fresh namespaces, as
// the demo does, with services running the static test payload, and
// assert what can be observed from outside: /proc, cgroup files, packets.

const testNet = `
[network]
bridge = "corral0"
subnet = "10.66.0.0/24"
`

// payloadDir is where services see the test payload. The binary may live
// anywhere on the host (a clone under /tmp, which every container gets a
// fresh tmpfs over), so each service binds its directory there.
const payloadDir = "/run/corral-test"

func payloadExec(t *testing.T, args ...string) string {
	q := []string{strconv.Quote(payloadDir + "/corral-payload")}
	for _, a := range args {
		q = append(q, strconv.Quote(a))
	}
	return "exec = [" + strings.Join(q, ", ") + "]\n"
}

// writeConfig is testutil.WriteConfig, plus the payload's bind mount for
// every service that runs it.
func writeConfig(t *testing.T, global string, services map[string]string) string {
	_, payload := testutil.Binaries(t)
	for name, body := range services {
		if strings.Contains(body, payloadDir) {
			services[name] = body + fmt.Sprintf("\n[[container.mounts]]\nsource = %q\ntarget = %q\n", filepath.Dir(payload), payloadDir)
		}
	}
	return testutil.WriteConfig(t, global, services)
}

func running(names ...string) func(api.StatusReply) bool {
	return func(r api.StatusReply) bool {
		for _, n := range names {
			if testutil.Svc(r, n).State.String() != "running" {
				return false
			}
		}
		return true
	}
}

func stateIs(name, state string) func(api.StatusReply) bool {
	return func(r api.StatusReply) bool { return testutil.Svc(r, name).State.String() == state }
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

// cgroupFile finds a limit file of service svc in corral's subtree, in
// whichever hierarchy (v1) or the unified tree (v2) has it.
func cgroupFile(t *testing.T, c *testutil.Corral, svc string, names ...string) (string, string) {
	t.Helper()
	for _, root := range testutil.CgroupDirs(c.Prefix) {
		for _, n := range names {
			p := filepath.Join(root, svc, n)
			if _, err := os.Stat(p); err == nil {
				return n, readTrim(t, p)
			}
		}
	}
	t.Fatalf("no %v for %s under %v", names, svc, testutil.CgroupDirs(c.Prefix))
	return "", ""
}

func TestNamespacesAndLimitsAreReal(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"box": payloadExec(t, "ns") + `
[limits]
memory = "64M"
pids = 32
cpu = 0.5
[container]
hostname = "boxhost"
`,
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "box running", running("box"))
	pid := mainHostPid(t, c, "box")
	for _, ns := range []string{"pid", "net", "mnt", "uts", "ipc", "cgroup"} {
		svc := readLink(t, fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		sup := readLink(t, fmt.Sprintf("/proc/%d/ns/%s", c.Pid, ns))
		if svc == sup {
			t.Errorf("%s namespace of the service is the supervisor's (%s)", ns, svc)
		}
	}
	// Inside, the service is PID 1 with its own hostname.
	waitLog(t, c, "box", "pid=1 hostname=boxhost")

	name, mem := cgroupFile(t, c, "box", "memory.max", "memory.limit_in_bytes")
	if mem != strconv.Itoa(64<<20) {
		t.Errorf("%s = %s, want %d", name, mem, 64<<20)
	}
	if _, pids := cgroupFile(t, c, "box", "pids.max"); pids != "32" {
		t.Errorf("pids.max = %s, want 32", pids)
	}
	switch name, cpu := cgroupFile(t, c, "box", "cpu.max", "cpu.cfs_quota_us"); name {
	case "cpu.max":
		if cpu != "50000 100000" {
			t.Errorf("cpu.max = %q, want \"50000 100000\"", cpu)
		}
	default:
		if cpu != "50000" {
			t.Errorf("cpu.cfs_quota_us = %s, want 50000", cpu)
		}
	}
	// The process really is in that cgroup, as the host sees it.
	if cg := readTrim(t, fmt.Sprintf("/proc/%d/cgroup", pid)); !strings.Contains(cg, c.Prefix+"/box") {
		t.Errorf("/proc/%d/cgroup does not name %s/box:\n%s", pid, c.Prefix, cg)
	}
	if err := c.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if left := testutil.CgroupDirs(c.Prefix); len(left) > 0 {
		t.Errorf("cgroups left behind after shutdown: %v", left)
	}
}

// hostPids lists a service's processes as the host sees them, from its
// cgroup. (The API reports pids in corral's own pid namespace.)
func hostPids(t *testing.T, c *testutil.Corral, svc string) []int {
	t.Helper()
	_, procs := cgroupFile(t, c, svc, "cgroup.procs")
	var out []int
	for _, f := range strings.Fields(procs) {
		out = append(out, mustAtoi(t, f))
	}
	return out
}

// mainHostPid is the host pid of the service's main process: the one that
// is PID 1 of its own pid namespace (the last NSpid entry).
func mainHostPid(t *testing.T, c *testutil.Corral, svc string) int {
	t.Helper()
	for _, p := range hostPids(t, c, svc) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
				return p
			}
		}
	}
	t.Fatalf("no main process of %s found in its cgroup", svc)
	return 0
}

func readLink(t *testing.T, p string) string {
	t.Helper()
	l, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitLog waits until a service's output has a line containing want.
func waitLog(t *testing.T, c *testutil.Corral, svc, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if rep, err := c.Client.Logs(svc, 0); err == nil {
			for _, l := range rep.Lines {
				if strings.Contains(l.Text, want) {
					return l.Text
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep, _ := c.Client.Logs(svc, 0)
	t.Fatalf("%s never printed %q; it printed %+v", svc, want, rep.Lines)
	return ""
}

func TestNotifyReadyOrdersDependants(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"db":  payloadExec(t, "notify", "-delay", "700ms", "-status", "accepting connections") + "notify = true\nstart_timeout = \"10s\"\n",
		"app": payloadExec(t, "sleep", "1h") + "requires = [\"db\"]\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "db and app running", running("db", "app"))
	if got := testutil.Svc(rep, "db").Status; got != "accepting connections" {
		t.Errorf("db STATUS = %q, want %q", got, "accepting connections")
	}
	db, err := c.Client.Service("db")
	if err != nil {
		t.Fatal(err)
	}
	app, err := c.Client.Service("app")
	if err != nil {
		t.Fatal(err)
	}
	var dbReady, dbExec, appStart time.Time
	for _, h := range db.History {
		if h.To == "running" {
			dbReady = h.Time
		}
		if h.Event == "exec" {
			dbExec = h.Time
		}
	}
	for _, h := range app.History {
		if h.To == "starting" && appStart.IsZero() {
			appStart = h.Time
		}
	}
	if dbReady.IsZero() || appStart.IsZero() {
		t.Fatalf("missing transitions: db %+v app %+v", db.History, app.History)
	}
	if appStart.Before(dbReady) {
		t.Errorf("app started at %s, before db was ready at %s", appStart, dbReady)
	}
	if dbReady.Sub(dbExec) < 500*time.Millisecond {
		t.Errorf("db counted as running %s after exec; it only sends READY=1 after 700ms", dbReady.Sub(dbExec))
	}
}

func TestNotifyTimeoutAndEarlyExit(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// never sends READY=1
		"mute": payloadExec(t, "trap-term", "1h") + "notify = true\nstart_timeout = \"500ms\"\nrestart = \"never\"\n",
		// exits before READY=1
		"quitter": payloadExec(t, "exit", "4", "100ms") + "notify = true\nstart_timeout = \"30s\"\nrestart = \"never\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "both failed", func(r api.StatusReply) bool {
		return testutil.Svc(r, "mute").State.String() == "failed" && testutil.Svc(r, "quitter").State.String() == "failed"
	})
	if r := testutil.Svc(rep, "mute").Reason; !strings.Contains(r, "no READY=1 within 500ms") {
		t.Errorf("mute reason = %q", r)
	}
	if r := testutil.Svc(rep, "quitter").Reason; !strings.Contains(r, "exited 4 before READY=1") {
		t.Errorf("quitter reason = %q", r)
	}
}

func TestCrashBacksOffThenFails(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"crash": payloadExec(t, "exit", "3") + `
restart_delay = "100ms"
restart_delay_max = "2s"
start_limit_burst = 5
start_limit_interval = "1m"
[network]
mode = "none"
`,
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(30*time.Second, "crash failed", stateIs("crash", "failed"))
	s := testutil.Svc(rep, "crash")
	if !strings.Contains(s.Reason, "start limit hit: 5 starts") {
		t.Errorf("reason = %q", s.Reason)
	}
	if s.LastExit != "exited 3" {
		t.Errorf("last exit = %q, want exited 3", s.LastExit)
	}
	full, err := c.Client.Service("crash")
	if err != nil {
		t.Fatal(err)
	}
	// The time spent in backoff grows with every failure.
	var delays []time.Duration
	var entered time.Time
	for _, h := range full.History {
		if h.To == "backoff" {
			entered = h.Time
		}
		if h.From == "backoff" && h.To == "starting" {
			delays = append(delays, h.Time.Sub(entered))
		}
	}
	if len(delays) != 4 {
		t.Fatalf("want 4 backoffs before failing, got %v (history %+v)", delays, full.History)
	}
	for i := 1; i < len(delays); i++ {
		if delays[i] <= delays[i-1] {
			t.Errorf("backoff %d (%s) not longer than backoff %d (%s): %v", i, delays[i], i-1, delays[i-1], delays)
		}
	}
	if s.Restarts != 4 {
		t.Errorf("restarts = %d, want 4", s.Restarts)
	}
}

func TestMemoryHogIsOOMKilled(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"hog": payloadExec(t, "alloc", "512") + `
restart = "never"
[limits]
memory = "48M"
[network]
mode = "none"
`,
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(30*time.Second, "hog failed", stateIs("hog", "failed"))
	if got := testutil.Svc(rep, "hog").LastExit; got != "oom-killed" {
		t.Errorf("last exit = %q, want oom-killed", got)
	}
}

func TestForkBombStopsAtPidsMax(t *testing.T) {
	dir := writeConfig(t, testNet, map[string]string{
		"bomb":  payloadExec(t, "forkbomb") + "[limits]\npids = 40\n[network]\nmode = \"none\"\n",
		"other": payloadExec(t, "trap-term", "1h") + "[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "bomb and other running", running("bomb", "other"))
	line := waitLog(t, c, "bomb", "payload: forked")
	var n int
	fmt.Sscanf(line, "payload: forked %d children", &n)
	if n <= 0 || n >= 40 {
		t.Errorf("fork bomb forked %d children; pids.max is 40", n)
	}
	if _, cur := cgroupFile(t, c, "bomb", "pids.current"); mustAtoi(t, cur) > 40 {
		t.Errorf("pids.current = %s > 40", cur)
	}
	// The supervisor stays responsive: another service restarts fine.
	rep, _ := c.Client.Status()
	before := testutil.Svc(rep, "other").Pid
	if err := c.Client.Action("other", "restart"); err != nil {
		t.Fatalf("restart other: %v", err)
	}
	c.WaitFor(20*time.Second, "other restarted", func(r api.StatusReply) bool {
		s := testutil.Svc(r, "other")
		return s.State.String() == "running" && s.Pid != before && s.Pid != 0
	})
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

func TestStopKillsEveryProcessOfTheService(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// handles SIGTERM; its setsid grandchild does not
		"parent": payloadExec(t, "setsid-child") + "stop_timeout = \"5s\"\n[network]\nmode = \"none\"\n",
		// PID 1 of its namespace with no SIGTERM handler: needs the kill
		"deaf": "exec = [\"/bin/sleep\", \"3600\"]\n" + "stop_timeout = \"500ms\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("parent", "deaf"))
	waitLog(t, c, "parent", "grandchild pid=")
	pids := hostPids(t, c, "parent")
	if len(pids) < 2 {
		t.Fatalf("want the service and its grandchild in the cgroup, got %v", pids)
	}
	for _, svc := range []string{"parent", "deaf"} {
		if err := c.Client.Action(svc, "stop"); err != nil {
			t.Fatalf("stop %s: %v", svc, err)
		}
	}
	rep := c.WaitFor(20*time.Second, "both stopped", func(r api.StatusReply) bool {
		return testutil.Svc(r, "parent").State.String() == "stopped" && testutil.Svc(r, "deaf").State.String() == "stopped"
	})
	for _, p := range pids {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Errorf("process %d of the stopped service is still alive: %s", p, st)
		}
	}
	deaf, _ := c.Client.Service("deaf")
	killed := false
	for _, h := range deaf.History {
		if strings.Contains(h.Reason, "killing every process in its cgroup") {
			killed = true
		}
	}
	if !killed {
		t.Errorf("deaf was not killed after its stop timeout: %+v", deaf.History)
	}
	if got := testutil.Svc(rep, "deaf").LastExit; got != "killed by SIGKILL" {
		t.Errorf("deaf last exit = %q", got)
	}
}

func TestBridgeNetworkCarriesTraffic(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"srv":    payloadExec(t, "serve-http", ":80") + "[network]\naddress = \"10.66.0.20\"\n",
		"client": payloadExec(t, "sleep", "1h") + "\n",
		"gone":   payloadExec(t, "exit", "1") + "restart = \"never\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "srv running", running("srv", "client"))
	if a := testutil.Svc(rep, "srv").Address; a != "10.66.0.20" {
		t.Errorf("srv address = %q", a)
	}
	// ICMP from the supervisor's network namespace across the veth.
	ping, args := "ping", []string{"-c", "1", "-W", "2", "10.66.0.20"}
	if _, err := exec.LookPath("ping"); err != nil {
		ping, args = "busybox", append([]string{"ping"}, args...)
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + c.NetNS(), ping}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ping across the veth: %v\n%s", err, out)
	}
	// TCP too: fetch the service's page from the supervisor's side. The
	// socket must be made on the thread that joined that namespace, so dial
	// here and speak HTTP by hand (http.Client dials on other goroutines).
	inNS := func(fn func() error) error { return testutil.InNetNSPath(c.NetNS(), fn) }
	body, err := rawHTTP(inNS, "10.66.0.20:80", "GET / HTTP/1.0\r\nHost: srv\r\n\r\n")
	if err != nil || !strings.HasSuffix(strings.TrimSpace(body), "\r\n\r\npayload") {
		t.Errorf("GET http://10.66.0.20/ from the supervisor: %q, %v", body, err)
	}
	// A service that is gone leaves no interface behind.
	c.WaitFor(20*time.Second, "gone failed", stateIs("gone", "failed"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("nsenter", "--net="+c.NetNS(), "ip", "-o", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("ip link: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "crlgone") {
			if !strings.Contains(string(out), "crlsrv") {
				t.Errorf("the running service's veth is missing:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("veth of the exited service still there:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBadFilesDisableOnlyWhatTheyMust(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"broken":   payloadExec(t, "sleep", "1h") + "restart = \"sometimes\"\n",
		"needy":    payloadExec(t, "sleep", "1h") + "requires = [\"broken\"]\n",
		"fine":     payloadExec(t, "sleep", "1h") + "[network]\nmode = \"none\"\n",
		"noexec":   "exec = [\"/nonexistent/daemon\"]\nrestart = \"never\"\n[network]\nmode = \"none\"\n",
		"badmount": payloadExec(t, "sleep", "1h") + "restart = \"never\"\n[[container.mounts]]\nsource = \"/nonexistent-src\"\ntarget = \"/mnt\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "fine running, bad ones failed", func(r api.StatusReply) bool {
		return testutil.Svc(r, "fine").State.String() == "running" &&
			testutil.Svc(r, "noexec").State.String() == "failed" &&
			testutil.Svc(r, "badmount").State.String() == "failed"
	})
	disabled := map[string]string{}
	for _, d := range rep.Disabled {
		disabled[d.Name] = d.Reason
	}
	if !strings.Contains(disabled["broken"], "restart") {
		t.Errorf("broken: reason %q should name the restart key", disabled["broken"])
	}
	if !strings.Contains(disabled["needy"], "broken") {
		t.Errorf("needy: reason %q should name broken", disabled["needy"])
	}
	if got := testutil.Svc(rep, "noexec").LastExit; got != "setup failed: exec /nonexistent/daemon: no such file or directory" {
		t.Errorf("noexec last exit = %q", got)
	}
	if got := testutil.Svc(rep, "badmount").LastExit; !strings.Contains(got, "mount /mnt: source /nonexistent-src: no such file or directory") {
		t.Errorf("badmount last exit = %q", got)
	}
}

func TestInitModeAndUser(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// a plain sleep is not PID 1 here: the tiny init forwards SIGTERM
		"wrapped": "exec = [\"/bin/sleep\", \"3600\"]\nstop_timeout = \"20s\"\n[container]\ninit = true\n[network]\nmode = \"none\"\n",
		"nobody":  payloadExec(t, "ns") + "user = \"nobody\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("wrapped", "nobody"))
	waitLog(t, c, "nobody", "uid=65534")
	if err := c.Client.Action("wrapped", "stop"); err != nil {
		t.Fatal(err)
	}
	rep := c.WaitFor(10*time.Second, "wrapped stopped", stateIs("wrapped", "stopped"))
	if got := testutil.Svc(rep, "wrapped").LastExit; got != "killed by SIGTERM" {
		t.Errorf("wrapped last exit = %q, want killed by SIGTERM (forwarded by the init)", got)
	}
}

func TestKillRestartsPerPolicy(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"victim": payloadExec(t, "trap-term", "1h") + "restart = \"always\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "victim running", running("victim"))
	before := mainHostPid(t, c, "victim")
	if err := c.Client.Kill("victim", "KILL"); err != nil {
		t.Fatal(err)
	}
	rep := c.WaitFor(20*time.Second, "victim restarted", func(r api.StatusReply) bool {
		s := testutil.Svc(r, "victim")
		return s.State.String() == "running" && s.Restarts == 1
	})
	if got := testutil.Svc(rep, "victim").LastExit; got != "killed by SIGKILL" {
		t.Errorf("last exit %q", got)
	}
	if after := mainHostPid(t, c, "victim"); after == before {
		t.Errorf("same main process %d after the kill", after)
	}
	if err := c.Client.Kill("nope", "KILL"); err == nil || !strings.Contains(err.Error(), "no such service") {
		t.Errorf("kill of an unknown service: %v", err)
	}
	if err := c.Client.Kill("victim", "BOGUS"); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Errorf("kill with a bad signal: %v", err)
	}
}

func TestMain(m *testing.M) { testutil.Main(m) }

// A second corral, started by hand by mistake, must not sweep a live
// corral's services as leftovers nor take over its control socket.
func TestSecondCorralLeavesTheFirstAlone(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"victim": payloadExec(t, "trap-term", "1h") + "[network]\nmode = \"none\"\n",
		"net":    payloadExec(t, "sleep", "1h"), // bridged
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("victim", "net"))
	before := mainHostPid(t, c, "victim")
	bin, _ := testutil.Binaries(t)
	empty := testutil.WriteConfig(t, "", map[string]string{})
	bridged := writeConfig(t, testNet, map[string]string{"other": payloadExec(t, "sleep", "1h")})
	for _, tc := range []struct{ name, config, prefix, stateDir, netns, want string }{
		{"same cgroup prefix", empty, c.Prefix, t.TempDir(), "", "another corral is running in this cgroup subtree"},
		{"same state directory", empty, c.Prefix + "-other", filepath.Dir(c.Socket()), "", "another corral is running with this state directory"},
		{"same network namespace", bridged, c.Prefix + "-net", filepath.Join(t.TempDir(), "state"), c.NetNS(), "another corral runs the bridge network in this network namespace"},
	} {
		// Supervisor mode (not PID 1), on the host's namespaces but for
		// the third's network; it must stop before its network or its
		// cgroups. If it does not, the timeout ends it and the checks
		// below fail.
		args := []string{bin, "--config", tc.config, "--log-format", "json", "--cgroup-prefix", tc.prefix, "--state-dir", tc.stateDir}
		if tc.netns != "" {
			args = append([]string{"nsenter", "--net=" + tc.netns, "--"}, args...)
		}
		out, err := runFor(exec.Command(args[0], args[1:]...), 20*time.Second)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: second corral: %v (want exit 1 and %q):\n%s", tc.name, err, tc.want, out)
		}
		if left := testutil.CgroupDirs(tc.prefix); tc.prefix != c.Prefix && len(left) > 0 {
			t.Errorf("%s: the refused corral left cgroups %v", tc.name, left)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(c.Socket()), "staging")); err != nil {
		t.Errorf("first corral's staging directory: %v", err)
	}
	if out, err := exec.Command("nsenter", "--net="+c.NetNS(), "--", "ip", "link", "show", "crlnet").CombinedOutput(); err != nil {
		t.Errorf("net's veth after the second corral: %v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(c.Socket()), "corral.sock")); err != nil {
		t.Errorf("first corral's socket: %v", err)
	}
	rep, err := c.Client.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s := testutil.Svc(rep, "victim"); s.State.String() != "running" || s.Restarts != 0 {
		t.Errorf("victim after the second corral: %s, %d restarts", s.State, s.Restarts)
	}
	if after := mainHostPid(t, c, "victim"); after != before {
		t.Errorf("victim's main process %d became %d", before, after)
	}
}

// runFor runs cmd, killing it (and only it) after d; its combined output.
func runFor(cmd *exec.Cmd, d time.Duration) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	timer := time.AfterFunc(d, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return out.String(), err
}
