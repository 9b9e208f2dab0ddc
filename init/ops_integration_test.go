//go:build integration

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/corral-init/corral/internal/logfile"
	"github.com/corral-init/corral/internal/testutil"
	"github.com/corral-init/corral/supervisor/api"
)

// These tests drive a running corral the way a person or a script does:
// through the corral binary's commands (and curl), against the control
// socket of a corral that is PID 1 of fresh namespaces.

// cliResult is one command's outcome.
type cliResult struct {
	out, err string
	code     int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
}

// cli runs `corral ARGS...` against c's socket and waits for it.
func cli(t *testing.T, c *testutil.Corral, args ...string) cliResult {
	t.Helper()
	bin, _ := testutil.Binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CORRAL_SOCKET="+c.Socket(), "NO_COLOR=1")
	return runResult(t, cmd)
}

// runResult runs cmd to its end: its output and exit code.
func runResult(t *testing.T, cmd *exec.Cmd) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return cliResult{out.String(), errb.String(), code}
}

// lineReader collects a background command's stdout lines.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	cmd   *exec.Cmd
}

func (l *lineReader) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// waitLine waits until a line matching re has been printed.
func (l *lineReader) waitLine(t *testing.T, re string, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, s := range l.all() {
			if rx.MatchString(s) {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line matching %q in:\n%s", re, strings.Join(l.all(), "\n"))
	return ""
}

// cliBackground starts a following command (logs -f, events).
func cliBackground(t *testing.T, c *testutil.Corral, args ...string) *lineReader {
	t.Helper()
	bin, _ := testutil.Binaries(t)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CORRAL_SOCKET="+c.Socket(), "NO_COLOR=1")
	pr, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &lineReader{cmd: cmd}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		_ = cmd.Wait()
	})
	return l
}

func TestCLIStatusStartStopLogsEventsAnalyze(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"db":  payloadExec(t, "notify", "-delay", "300ms", "-status", "accepting connections") + "notify = true\n[network]\nmode = \"none\"\n",
		"web": payloadExec(t, "tick", "100ms", "web") + "requires = [\"db\"]\n[network]\naddress = \"10.66.0.30\"\n",
		"rel": payloadExec(t, "reloadable") + "notify = true\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "db, web and rel running", running("db", "web", "rel"))

	// status: the table, with CPU and memory from the cgroup.
	r := cli(t, c, "status")
	if r.code != 0 || !regexp.MustCompile(`(?m)^SERVICE\s+STATE\s+SINCE\s+PID\s+RESTARTS\s+ADDRESS\s+MEMORY\s+CPU\s+LAST EXIT\s+STATUS`).MatchString(r.out) {
		t.Fatalf("status:\n%s", r)
	}
	if !regexp.MustCompile(`(?m)^web\s+running\s+\S+\s+\d+\s+0\s+10\.66\.0\.30\s+[\d.]+[BKMG]\s+[\d.]+s\s+-\s+-`).MatchString(r.out) {
		t.Errorf("web's row:\n%s", r.out)
	}
	if !regexp.MustCompile(`(?m)^db\s+running .*accepting connections$`).MatchString(r.out) {
		t.Errorf("db's row:\n%s", r.out)
	}
	if strings.Contains(r.out, "\x1b[") {
		t.Errorf("colour codes on a pipe:\n%q", r.out)
	}
	t.Logf("corral status:\n%s", r.out)
	var js api.StatusReply
	if r := cli(t, c, "status", "--json"); r.code != 0 || json.Unmarshal([]byte(r.out), &js) != nil || testutil.Svc(js, "web").CPUSeconds == nil {
		t.Errorf("status --json:\n%s", r)
	}
	if r := cli(t, c, "status", "web"); r.code != 0 || !strings.Contains(r.out, "web: running since") || !strings.Contains(r.out, "history:") {
		t.Errorf("status web:\n%s", r)
	}
	if r := cli(t, c, "status", "nope"); r.code != exitNoService || !strings.Contains(r.err, "no such service") {
		t.Errorf("status nope: want exit %d:\n%s", exitNoService, r)
	}

	// events and logs -f follow from here on.
	ev := cliBackground(t, c, "events", "-n", "0")
	follow := cliBackground(t, c, "logs", "-f", "-n", "1", "web")
	follow.waitLine(t, `web \d+$`, 10*time.Second)

	// stop, start, restart, kill: each waits and says how it ended.
	if r := cli(t, c, "stop", "web"); r.code != 0 || !strings.Contains(r.out, "web: stopped") {
		t.Errorf("stop web:\n%s", r)
	}
	ev.waitLine(t, `web\s+stopping\s+-> stopped`, 10*time.Second)
	if r := cli(t, c, "stop", "web"); r.code != 0 {
		t.Errorf("stop of a stopped service is success, as systemctl:\n%s", r)
	}
	if r := cli(t, c, "start", "web"); r.code != 0 || !strings.Contains(r.out, "web: running (pid ") {
		t.Errorf("start web:\n%s", r)
	}
	before := testutil.Svc(c.WaitFor(10*time.Second, "web", running("web")), "web").Pid
	if r := cli(t, c, "restart", "web"); r.code != 0 || !strings.Contains(r.out, "web: running") {
		t.Errorf("restart web:\n%s", r)
	}
	if after := testutil.Svc(c.WaitFor(10*time.Second, "web", running("web")), "web").Pid; after == before {
		t.Errorf("restart kept pid %d", after)
	}
	if r := cli(t, c, "kill", "web", "KILL"); r.code != 0 {
		t.Errorf("kill web:\n%s", r)
	}
	c.WaitFor(20*time.Second, "web restarted after the kill", func(r api.StatusReply) bool {
		s := testutil.Svc(r, "web")
		return s.State.String() == "running" && s.Restarts == 1 && s.LastExit == "killed by SIGKILL"
	})
	ev.waitLine(t, `web\s+running\s+-> backoff \(exited\).*killed by SIGKILL`, 10*time.Second)
	// The follower saw the new instance's output too.
	follow.waitLine(t, `^\d\d:\d\d:\d\d\.\d{3} web 0$`, 10*time.Second)

	// reload SERVICE is still the service's reload (SIGHUP, then its
	// RELOADING=1 ... READY=1), and --json prints where it ended.
	r = cli(t, c, "reload", "--json", "rel")
	var relSnap api.Service
	if r.code != 0 || json.Unmarshal([]byte(r.out), &relSnap) != nil || relSnap.Status != "reloaded 1 times" {
		t.Errorf("reload --json rel:\n%s", r)
	}
	if r := cli(t, c, "events", "--no-follow", "--json", "-n", "3"); r.code != 0 || !strings.Contains(r.out, `"events"`) {
		t.Errorf("events --no-follow --json:\n%s", r)
	}

	// logs: one service, all of them (prefixed, with corral's own), corral's.
	if r := cli(t, c, "logs", "-n", "3", "web"); r.code != 0 || len(strings.Split(strings.TrimSpace(r.out), "\n")) != 3 || !strings.Contains(r.out, " web ") {
		t.Errorf("logs -n 3 web:\n%s", r)
	}
	r = cli(t, c, "logs", "-n", "200")
	if r.code != 0 || !regexp.MustCompile(`(?m)^\S+ web\s+web \d+$`).MatchString(r.out) || !regexp.MustCompile(`(?m)^\S+ corral\s+`).MatchString(r.out) {
		t.Errorf("logs (all):\n%s", r)
	}
	r = cli(t, c, "logs", "corral", "-n", "500")
	if r.code != 0 || !strings.Contains(r.out, "control socket ready") || strings.Contains(r.out, `{"level"`) {
		t.Errorf("logs corral (human, not JSON):\n%s", r)
	}

	// analyze: the timeline and the chain web <- db.
	r = cli(t, c, "analyze")
	if r.code != 0 || !regexp.MustCompile(`(?m)^web @\S+ \+\S+\n└─db @\S+ \+\S+$`).MatchString(r.out) {
		t.Errorf("analyze:\n%s", r)
	}
	t.Logf("corral analyze:\n%s", r.out)

	// curl works on the socket too.
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command("curl", "-sS", "--unix-socket", c.Socket(), "http://corral/v1/services/db").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"status":"accepting connections"`) {
			t.Errorf("curl --unix-socket: %v\n%s", err, out)
		}
	}

	// reboot: accepted, and corral stops everything and exits.
	if r := cli(t, c, "reboot"); r.code != 0 {
		t.Errorf("reboot:\n%s", r)
	}
	select {
	case <-c.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("corral did not shut down after `corral reboot`")
	}
	if !strings.Contains(c.Log(), "all services stopped") {
		t.Errorf("no orderly shutdown in the log")
	}
}

// asUser runs `corral ARGS` as uid/gid inside corral's mount namespace (a
// non-root process cannot follow /proc/PID/root), with the binary copied
// where that user can read it.
func asUser(t *testing.T, c *testutil.Corral, uid, gid int, args ...string) cliResult {
	t.Helper()
	bin, _ := testutil.Binaries(t)
	dir, err := os.MkdirTemp("", "corral-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "corral")
	if err := os.WriteFile(client, b, 0o755); err != nil {
		t.Fatal(err)
	}
	nsargs := append([]string{"--mount=/proc/" + strconv.Itoa(c.Pid) + "/ns/mnt", "--setuid", strconv.Itoa(uid), "--setgid", strconv.Itoa(gid), "--", client}, args...)
	cmd := exec.Command("nsenter", nsargs...)
	cmd.Env = []string{"CORRAL_SOCKET=/run/corral/corral.sock", "NO_COLOR=1", "PATH=/usr/bin:/bin"}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	return cliResult{out.String(), errb.String(), code}
}

func TestAPIPermissions(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (util-linux) to run a client as another user")
	}
	svc := map[string]string{"web": payloadExec(t, "sleep", "1h") + "[network]\nmode = \"none\"\n"}
	t.Run("root-only", func(t *testing.T) {
		t.Parallel()
		c := testutil.StartCorral(t, writeConfig(t, testNet, map[string]string{"web": svc["web"]}))
		c.WaitFor(20*time.Second, "web running", running("web"))
		r := asUser(t, c, 65534, 65534, "status")
		if r.code != exitDenied || !strings.Contains(r.err, "permission denied") {
			t.Errorf("nobody's status: want exit %d:\n%s", exitDenied, r)
		}
		if r := asUser(t, c, 0, 0, "status"); r.code != 0 || !strings.Contains(r.out, "web") {
			t.Errorf("root's status:\n%s", r)
		}
		// And root may power it off.
		if r := asUser(t, c, 0, 0, "poweroff"); r.code != 0 || !strings.Contains(r.out, "poweroff: accepted") {
			t.Errorf("root's poweroff:\n%s", r)
		}
		select {
		case <-c.Exited():
		case <-time.After(30 * time.Second):
			t.Fatal("corral did not shut down after `corral poweroff`")
		}
	})
	t.Run("read-group", func(t *testing.T) {
		t.Parallel()
		c := testutil.StartCorral(t, writeConfig(t, testNet+"\n[api]\nread_group = 4242\n", map[string]string{"web": svc["web"]}))
		c.WaitFor(20*time.Second, "web running", running("web"))
		// A member may read...
		if r := asUser(t, c, 65534, 4242, "status"); r.code != 0 || !strings.Contains(r.out, "web") {
			t.Errorf("group member's status:\n%s", r)
		}
		if r := asUser(t, c, 65534, 4242, "logs", "corral", "-n", "5"); r.code != 0 {
			t.Errorf("group member's logs:\n%s", r)
		}
		// ...but not steer.
		for _, args := range [][]string{{"stop", "web"}, {"reload"}, {"kill", "web"}, {"reboot"}} {
			r := asUser(t, c, 65534, 4242, args...)
			if r.code != exitDenied || !strings.Contains(r.err, "may only read") {
				t.Errorf("group member's %v: want exit %d:\n%s", args, exitDenied, r)
			}
		}
		if s := testutil.Svc(c.WaitFor(5*time.Second, "status", running("web")), "web"); s.Restarts != 0 {
			t.Errorf("web was touched: %+v", s)
		}
		// Someone else may not even read.
		if r := asUser(t, c, 65534, 65534, "status"); r.code != exitDenied || !strings.Contains(r.err, "permission denied") {
			t.Errorf("non-member's status: want exit %d:\n%s", exitDenied, r)
		}
		info, err := os.Stat(c.Socket())
		if err != nil {
			t.Fatal(err)
		}
		if st := info.Sys().(*syscall.Stat_t); info.Mode().Perm() != 0o660 || st.Gid != 4242 {
			t.Errorf("socket mode %v gid %d, want 0660 and 4242", info.Mode().Perm(), st.Gid)
		}
		if r := cli(t, c, "halt", "--json"); r.code != 0 || !strings.Contains(r.out, `"accepted": true`) {
			t.Errorf("halt --json:\n%s", r)
		}
		select {
		case <-c.Exited():
		case <-time.After(30 * time.Second):
			t.Fatal("corral did not shut down after `corral halt`")
		}
	})
}

func TestReloadRejectsBrokenConfigAndRestartsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"a": payloadExec(t, "sleep", "1h") + "[network]\nmode = \"none\"\n",
		"b": payloadExec(t, "sleep", "1h") + "requires = [\"a\"]\n[network]\nmode = \"none\"\n",
		"c": payloadExec(t, "sleep", "1h") + "[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	pids := func() map[string]int {
		rep := c.WaitFor(20*time.Second, "running", running("a", "b"))
		m := map[string]int{}
		for _, s := range rep.Services {
			m[s.Name] = s.Pid
		}
		return m
	}
	c.WaitFor(20*time.Second, "all running", running("a", "b", "c"))
	start := pids()
	svcFile := func(name string) string { return filepath.Join(dir, "services", name+".toml") }
	orig, _ := os.ReadFile(svcFile("b"))

	// A broken file: rejected as a whole, nothing restarted.
	if err := os.WriteFile(svcFile("b"), append([]byte("restart = \"sometimes\"\n"), orig...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, payload := testutil.Binaries(t)
	d := payloadExec(t, "sleep", "1h") + fmt.Sprintf("[network]\nmode = \"none\"\n[[container.mounts]]\nsource = %q\ntarget = %q\n", filepath.Dir(payload), payloadDir)
	if err := os.WriteFile(svcFile("d"), []byte(d), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cli(t, c, "reload")
	if r.code != exitFailed || !strings.Contains(r.err, "reload rejected") || !regexp.MustCompile(`services/b\.toml:\d+: restart: `).MatchString(r.err) {
		t.Errorf("reload of a broken config:\n%s", r)
	}
	time.Sleep(300 * time.Millisecond)
	rep, _ := c.Client.Status()
	for _, s := range rep.Services {
		if s.Pid != start[s.Name] || s.Restarts != 0 {
			t.Errorf("%s changed after a rejected reload: pid %d (was %d)", s.Name, s.Pid, start[s.Name])
		}
	}
	if testutil.Svc(rep, "d").Name != "" {
		t.Errorf("d was added from a rejected config")
	}

	// Fix it, change b, add d, remove c: the plan, then the reload.
	changed := strings.Replace(string(orig), "\"1h\"", "\"2h\"", 1)
	if err := os.WriteFile(svcFile("b"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(svcFile("c")); err != nil {
		t.Fatal(err)
	}
	r = cli(t, c, "reload", "--dry-run")
	if r.code != 0 || r.out != "would start   d\nwould restart b\nwould stop    c\n" {
		t.Errorf("reload --dry-run:\n%s", r)
	}
	if rep, _ := c.Client.Status(); testutil.Svc(rep, "c").State.String() != "running" {
		t.Errorf("a dry run stopped c")
	}
	r = cli(t, c, "reload")
	if r.code != 0 || !strings.Contains(r.out, "restart b") || !strings.Contains(r.out, "b: running") || !strings.Contains(r.out, "d: running") {
		t.Errorf("reload:\n%s", r)
	}
	t.Logf("corral reload:\n%s", r.out)
	rep = c.WaitFor(20*time.Second, "a, b, d running", running("a", "b", "d"))
	if got := testutil.Svc(rep, "a").Pid; got != start["a"] {
		t.Errorf("a is unchanged but was restarted (pid %d, was %d)", got, start["a"])
	}
	if got := testutil.Svc(rep, "b").Pid; got == start["b"] {
		t.Errorf("b changed but kept pid %d", got)
	}
	if testutil.Svc(rep, "c").Name != "" {
		t.Errorf("c is still there: %+v", testutil.Svc(rep, "c"))
	}
	if left := testutil.CgroupDirs(c.Prefix); len(left) > 0 {
		for _, root := range left {
			if _, err := os.Stat(filepath.Join(root, "c")); err == nil {
				t.Errorf("c's cgroup is left behind in %s", root)
			}
		}
	}

	// SIGHUP does the same; with nothing changed it restarts nothing.
	bBefore := testutil.Svc(rep, "b").Pid
	if err := syscall.Kill(c.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.Log(), "SIGHUP: config reloaded: no service changed") {
		if time.Now().After(deadline) {
			t.Fatalf("no SIGHUP reload in the log:\n%s", c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rep, _ := c.Client.Status(); testutil.Svc(rep, "b").Pid != bBefore {
		t.Errorf("SIGHUP with nothing changed restarted b")
	}
}

func TestLogFloodRotationAndDrops(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	global := testNet + fmt.Sprintf(`
[log]
dir = %q
file_size = "64K"
keep = 2
total_size = "256K"
rate = 2000
burst = 2000
`, logDir)
	dir := writeConfig(t, global, map[string]string{
		"flood": payloadExec(t, "flood", "300000", "60") + "[network]\nmode = \"none\"\n",
		"quiet": payloadExec(t, "tick", "50ms", "quiet") + "[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("flood", "quiet"))
	// The flood is over when its last line (or the note about drops) is in.
	deadline := time.Now().Add(60 * time.Second)
	var flood api.LogsReply
	for {
		flood, _ = c.Client.Logs("flood", 0)
		if n := len(flood.Lines); n > 0 && strings.Contains(flood.Lines[n-1].Text, "flood done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the flood did not end; last lines %+v", flood.Lines[max(0, len(flood.Lines)-3):])
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // the announcement comes within a second
	flood, _ = c.Client.Logs("flood", 0)
	if len(flood.Lines) > 1000 {
		t.Errorf("the ring holds %d lines, more than its 1000", len(flood.Lines))
	}
	re := regexp.MustCompile(`^corral: dropped (\d+) lines \(more than 2000 lines/s, burst 2000\)$`)
	dropped := 0
	for _, l := range flood.Lines {
		if m := re.FindStringSubmatch(l.Text); m != nil && l.Note {
			n, _ := strconv.Atoi(m[1])
			dropped += n
		}
	}
	if dropped == 0 {
		t.Errorf("no \"dropped N lines\" note in flood's log:\n%v", flood.Lines[max(0, len(flood.Lines)-5):])
	}
	// The console echoes only what the rate limit let through: never more
	// lines than the log kept (300000 lines and "flood done" sent, of which
	// dropped were not).
	echoed := strings.Count(c.Log(), `"svc":"flood","output":true,`)
	if echoed == 0 || echoed > 300001-dropped {
		t.Errorf("the console echoed %d of flood's lines; the log dropped %d of 300000", echoed, dropped)
	}
	// The supervisor's memory stays bounded.
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid))
	if m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(status); m == nil {
		t.Error("no VmRSS")
	} else if kb, _ := strconv.Atoi(string(m[1])); kb > 100<<10 {
		t.Errorf("corral's RSS is %d kB after a flood", kb)
	}
	// quiet's lines are all there, none lost, in order.
	quiet, _ := c.Client.Logs("quiet", 0)
	prev := -1
	for _, l := range quiet.Lines {
		var n int
		if _, err := fmt.Sscanf(l.Text, "quiet %d", &n); err != nil {
			t.Errorf("quiet printed %q", l.Text)
			continue
		}
		if prev >= 0 && n != prev+1 {
			t.Errorf("quiet's lines jump from %d to %d", prev, n)
		}
		prev = n
	}
	if prev < 10 {
		t.Errorf("quiet has only %d lines", prev+1)
	}
	// Files: rotated at 64K, 2 kept, the directory capped.
	var total int64
	names := map[string]int64{}
	entries, _ := os.ReadDir(logDir)
	for _, e := range entries {
		info, _ := e.Info()
		names[e.Name()] = info.Size()
		total += info.Size()
	}
	for _, n := range []string{"flood.log", "flood.log.1", "quiet.log", "corral.log"} {
		if _, ok := names[n]; !ok {
			t.Errorf("no %s in %v", n, names)
		}
	}
	// flood.log.2 is kept, unless the total cap took it: on a slow
	// (emulated) machine the test runs long enough for quiet to rotate
	// too, and another 64K file would be over 256K.
	if _, ok := names["flood.log.2"]; !ok && total+64<<10 <= 256<<10 {
		t.Errorf("no flood.log.2 in %v (%d bytes in all: under the cap with it)", names, total)
	}
	if _, ok := names["flood.log.3"]; ok {
		t.Errorf("keep = 2 but there is flood.log.3: %v", names)
	}
	for n, size := range names {
		if size > 64<<10 {
			t.Errorf("%s is %d bytes, over file_size 64K", n, size)
		}
	}
	if total > 256<<10+3*64<<10 {
		t.Errorf("the log directory holds %d bytes (cap 256K + the current files): %v", total, names)
	}
	b, _ := os.ReadFile(filepath.Join(logDir, "flood.log"))
	if !bytes.Contains(b, []byte("!corral: dropped ")) && !bytes.Contains(b, []byte("flood done")) {
		t.Errorf("flood.log has neither the end nor the note")
	}
	if b, _ := os.ReadFile(filepath.Join(logDir, "corral.log")); !bytes.Contains(b, []byte(`"message":"control socket ready"`)) {
		t.Errorf("corral.log does not have corral's own lines:\n%.2000s", b)
	}
}

func TestLongLinesBinaryAndNoFinalNewlineRoundTrip(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	dir := writeConfig(t, testNet+fmt.Sprintf("\n[log]\ndir = %q\n", logDir), map[string]string{
		"weird": payloadExec(t, "weird") + "restart = \"never\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "weird done", stateIs("weird", "done"))
	want := strings.Repeat("0123456789", 1000) + "\nbin\x00\xff\xfe\x1b[2J\r\tend\nno newline at the end"
	r := cli(t, c, "logs", "--raw", "-n", "0", "weird")
	if r.code != 0 || r.out != want {
		t.Errorf("logs --raw gives back %d bytes, want %d: %q", len(r.out), len(want), r.out[max(0, len(r.out)-80):])
	}
	// The file, read back record by record, gives the same bytes.
	deadline := time.Now().Add(5 * time.Second)
	var got bytes.Buffer
	for time.Now().Before(deadline) {
		got.Reset()
		b, _ := os.ReadFile(filepath.Join(logDir, "weird.log"))
		for _, rec := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			if _, flag, text, ok := logfile.ParseRecord(rec); ok {
				got.WriteString(text)
				if flag == logfile.FlagLine {
					got.WriteByte('\n')
				}
			}
		}
		if got.String() == want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.String() != want {
		t.Errorf("weird.log gives back %q", got.String())
	}
	// The human view escapes, joins the cut line, marks the unfinished one.
	r = cli(t, c, "logs", "-n", "0", "weird")
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], strings.Repeat("0123456789", 1000)) ||
		!strings.HasSuffix(lines[1], `bin\x00`+"\ufffd\ufffd"+`\x1b[2J\x0d	end`) && !strings.Contains(lines[1], `\x1b[2J`) ||
		!strings.HasSuffix(lines[2], "no newline at the end ⏎") {
		t.Errorf("logs weird:\n%q", r.out)
	}

	// The files outlive corral: the next one shows both runs from them.
	if err := c.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	c2 := testutil.StartCorral(t, dir)
	c2.WaitFor(20*time.Second, "weird done again", stateIs("weird", "done"))
	deadline = time.Now().Add(5 * time.Second)
	for {
		r = cli(t, c2, "logs", "--files", "--raw", "-n", "0", "weird")
		if r.code == 0 && r.out == want+want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.code != 0 || r.out != want+want {
		t.Errorf("logs --files --raw after a restart: %d bytes, want the %d of two runs:\n%s", len(r.out), 2*len(want), r.err)
	}
	r = cli(t, c2, "logs", "--files", "-n", "0", "corral")
	if r.code != 0 || strings.Count(r.out, "control socket ready") != 2 {
		t.Errorf("logs --files corral does not show both runs' lines:\n%.3000s", r.out)
	}
}

// scrape fetches /metrics from inside corral's network namespace (dialled
// on the thread that joined it) and parses it with the client library's
// text parser.
func scrape(t *testing.T, c *testutil.Corral, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	inNS := func(fn func() error) error { return testutil.InNetNSPath(c.NetNS(), fn) }
	body, err := rawHTTP(inNS, addr, "GET /metrics HTTP/1.0\r\nHost: corral\r\nAccept: text/plain\r\n\r\n")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	_, text, ok := strings.Cut(body, "\r\n\r\n")
	if !ok || !regexp.MustCompile(`^HTTP/1\.[01] 200 `).MatchString(body) {
		t.Fatalf("scrape: %.500s", body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse the scrape: %v\n%.2000s", err, text)
	}
	return fams
}

func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
	}
	return 0, false
}

func TestPrometheusScrape(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet+"\n[metrics]\nlisten = \"127.0.0.1:9100\"\n[log]\nrate = 100\nburst = 10\n", map[string]string{
		"spin":  payloadExec(t, "spin") + "[limits]\ncpu = 0.2\n[network]\nmode = \"none\"\n",
		"hog":   payloadExec(t, "alloc", "512") + "restart = \"never\"\n[limits]\nmemory = \"48M\"\n[network]\nmode = \"none\"\n",
		"noisy": payloadExec(t, "flood", "1000") + "[network]\nmode = \"none\"\n",
		"dog":   payloadExec(t, "notify") + "notify = true\nwatchdog = \"300ms\"\nrestart = \"never\"\nstop_timeout = \"500ms\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(30*time.Second, "hog oom-killed, dog timed out", func(r api.StatusReply) bool {
		return testutil.Svc(r, "hog").State.String() == "failed" && testutil.Svc(r, "spin").State.String() == "running" &&
			testutil.Svc(r, "dog").State.String() == "failed"
	})
	time.Sleep(1500 * time.Millisecond) // spin burns some CPU; noisy's drops are announced
	fams := scrape(t, c, "127.0.0.1:9100")
	for _, m := range []struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
		want   string
	}{
		{"corral_service_up", map[string]string{"service": "spin"}, func(v float64) bool { return v == 1 }, "1"},
		{"corral_service_state", map[string]string{"service": "hog", "state": "failed"}, func(v float64) bool { return v == 1 }, "1"},
		{"corral_service_oom_kills_total", map[string]string{"service": "hog"}, func(v float64) bool { return v == 1 }, "1"},
		{"corral_service_last_exit_signal", map[string]string{"service": "hog", "signal": "SIGKILL"}, func(v float64) bool { return v == 1 }, "1"},
		{"corral_service_watchdog_timeouts_total", map[string]string{"service": "dog"}, func(v float64) bool { return v == 1 }, "1"},
		{"corral_service_cpu_seconds_total", map[string]string{"service": "spin"}, func(v float64) bool { return v > 0.05 }, "> 0.05"},
		{"corral_service_memory_bytes", map[string]string{"service": "spin"}, func(v float64) bool { return v > 0 }, "> 0"},
		{"corral_service_restarts_total", map[string]string{"service": "spin"}, func(v float64) bool { return v == 0 }, "0"},
		{"corral_log_lines_dropped_total", map[string]string{"service": "noisy", "reason": "rate"}, func(v float64) bool { return v > 0 }, "> 0"},
		{"corral_service_boot_seconds", map[string]string{"service": "spin", "phase": "ready"}, func(v float64) bool { return v > 0 && v < 30 }, "in (0, 30)"},
		{"corral_boot_uptime_seconds", nil, func(v float64) bool { return v == 0 }, "0 (not PID 1 of a machine)"},
		{"corral_boot_complete_seconds", nil, func(v float64) bool { return v > 0 && v < 30 }, "in (0, 30)"},
		{"corral_start_time_seconds", nil, func(v float64) bool { return v > 1e9 }, "a unix time"},
	} {
		if v, ok := metricValue(fams, m.name, m.labels); !ok || !m.ok(v) {
			t.Errorf("%s%v = %v (present %v), want %s", m.name, m.labels, v, ok, m.want)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
}

func TestRemoteSyslog(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet+"\nhostname = \"box\"\n[log]\nsyslog = \"udp://127.0.0.1:5514\"\n", map[string]string{
		"talker": payloadExec(t, "tick", "50ms", "hello syslog") + "[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "talker running", running("talker"))
	// The collector listens on loopback inside corral's network namespace.
	var pc net.PacketConn
	if err := testutil.InNetNSPath(c.NetNS(), func() error {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:5514")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	buf := make([]byte, 9000)
	re := regexp.MustCompile(`^<30>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ talker - - - hello syslog \d+$`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = pc.SetReadDeadline(deadline)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no RFC 5424 line from talker: %v", err)
		}
		if re.Match(buf[:n]) {
			break
		}
	}
}

func TestCorralRunWithoutARunningCorral(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	bin, payload := testutil.Binaries(t)
	// In fresh network and mount namespaces (not pid: as PID 1 the binary
	// would boot a supervisor).
	run := func(args ...string) cliResult {
		cmd := exec.Command(bin, append([]string{"run", "--bind", filepath.Dir(payload) + ":" + payloadDir}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
		return runResult(t, cmd)
	}
	p := payloadDir + "/corral-payload"
	r := run("--timing", "--memory", "64M", "--name", "try", "--", p, "exit", "7")
	if r.code != 7 || !strings.Contains(r.out, "payload: exiting with 7") || !regexp.MustCompile(`corral run: try exec'd \S+ after corral run started`).MatchString(r.err) {
		t.Errorf("exit 7:\n%s", r)
	}
	t.Logf("corral run --timing:\n%s", r.err)
	// Killed by the OOM killer: 128+9.
	if r := run("--memory", "32M", "--", p, "alloc", "256"); r.code != 137 {
		t.Errorf("oom: want exit 137:\n%s", r)
	}
	// A bad option is reported with the key, and 125.
	if r := run("--pids", "3", "--", p, "exit", "0"); r.code != 125 || !strings.Contains(r.err, "limits.pids") {
		t.Errorf("pids 3: want 125 and the key:\n%s", r)
	}
	// A service file works too, and its network mode bridge is refused
	// gently.
	file := filepath.Join(t.TempDir(), "svc.toml")
	if err := os.WriteFile(file, []byte(payloadExec(t, "exit", "3")+"[limits]\nmemory = \"64M\"\n[network]\nmode = \"bridge\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run("--service", file); r.code != 3 || !strings.Contains(r.err, "bridge networking belongs to the running corral") {
		t.Errorf("--service: want exit 3:\n%s", r)
	}
	if left := testutil.CgroupDirs("corral-run-*"); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, root := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		if m, _ := filepath.Glob(filepath.Join(root, "*", "corral-run-*")); len(m) > 0 {
			t.Errorf("cgroups left: %v", m)
		}
		if m, _ := filepath.Glob(filepath.Join(root, "corral-run-*")); len(m) > 0 {
			t.Errorf("cgroups left: %v", m)
		}
	}
}

func TestReloadRefusesANetworkPlanItCannotApply(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"srv": payloadExec(t, "sleep", "1h") + "[network]\naddress = \"10.66.0.40\"\n",
	})
	c := testutil.StartCorral(t, dir)
	before := testutil.Svc(c.WaitFor(20*time.Second, "srv running", running("srv")), "srv").Pid
	file := filepath.Join(dir, "services", "srv.toml")
	orig, _ := os.ReadFile(file)
	// A new address changes the firewall and /etc/hosts: refused.
	if err := os.WriteFile(file, []byte(strings.Replace(string(orig), "10.66.0.40", "10.66.0.41", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, c, "reload"); r.code != exitFailed || !strings.Contains(r.err, "the firewall and /etc/hosts are only made at boot") {
		t.Errorf("reload with a new address:\n%s", r)
	}
	// A broken bridged service file would change the plan too (it is
	// disabled): the file's problem is what the reload says.
	if err := os.WriteFile(file, append(slices.Clone(orig), "bogus_key = 1\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, c, "reload"); r.code != exitFailed || !strings.Contains(r.err, "bogus_key: unknown key") || strings.Contains(r.err, "only made at boot") {
		t.Errorf("reload with a broken bridged service:\n%s", r)
	}
	// Anything else about a bridged service is applied.
	if err := os.WriteFile(file, []byte(strings.Replace(string(orig), "\"1h\"", "\"2h\"", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, c, "reload"); r.code != 0 || !strings.Contains(r.out, "restart srv") {
		t.Errorf("reload with a new command line:\n%s", r)
	}
	if after := testutil.Svc(c.WaitFor(20*time.Second, "srv running", running("srv")), "srv"); after.Pid == before || after.Address != "10.66.0.40" {
		t.Errorf("srv after the reload: pid %d (was %d), address %s", after.Pid, before, after.Address)
	}
}

// A command that ignores SIGTERM (busybox sleep as PID 1 of its pid
// namespace) is killed stop_timeout after corral run got the signal.
func TestCorralRunKillsWhatIgnoresTheStopSignal(t *testing.T) {
	// Not parallel: TestCorralRunWithoutARunningCorral checks that no
	// corral-run-* cgroup is left, and this one's exists while it runs.
	testutil.RequireRoot(t)
	bin, _ := testutil.Binaries(t)
	file := filepath.Join(t.TempDir(), "sleepy.toml")
	body := "exec = [\"/bin/busybox\", \"sleep\", \"60\"]\nstop_timeout = \"1s\"\n[network]\nmode = \"none\"\n"
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--timing", "--service", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	var errb testutil.SyncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "exec'd") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("never started:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		// A third signal makes corral run kill the container; SIGKILL
		// to corral run alone would leave the container behind.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		t.Fatalf("corral run still running 30 s after SIGTERM:\n%s", errb.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 137 || !strings.Contains(errb.String(), "SIGKILL in 1s") {
		t.Errorf("want exit 137 after the note: %v\n%s", err, errb.String())
	}
}

// A waiting command ends when a later request overrides it, and a reload
// neither restarts nor waits for a changed service an operator stopped.
func TestWaitsEndWhenOverriddenAndReloadLeavesStoppedServicesStopped(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// busybox sleep as PID 1 ignores SIGTERM: its stop takes stop_timeout.
		"stubborn": "exec = [\"/bin/busybox\", \"sleep\", \"3600\"]\nstop_timeout = \"3s\"\n[network]\nmode = \"none\"\n",
		"top":      payloadExec(t, "sleep", "1h") + "[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("stubborn", "top"))
	bin, _ := testutil.Binaries(t)
	stop := exec.Command(bin, "stop", "--timeout", "60s", "stubborn")
	stop.Env = append(os.Environ(), "CORRAL_SOCKET="+c.Socket(), "NO_COLOR=1")
	type result struct {
		out string
		err error
	}
	stopped := make(chan result, 1)
	go func() {
		out, err := runFor(stop, 90*time.Second)
		stopped <- result{out, err}
	}()
	c.WaitFor(20*time.Second, "stubborn stopping", stateIs("stubborn", "stopping"))
	if r := cli(t, c, "restart", "stubborn"); r.code != 0 {
		t.Errorf("restart during the stop:\n%s", r)
	}
	select {
	case r := <-stopped:
		var ee *exec.ExitError
		// At once, while the stop (3 s of stop_timeout) still runs.
		if !errors.As(r.err, &ee) || ee.ExitCode() != 1 || !strings.Contains(r.out, "stubborn: stopping: started again since this stop was asked for") {
			t.Errorf("the overridden stop: %v\n%s", r.err, r.out)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("corral stop still waiting 30 s after a restart overrode it")
	}

	if r := cli(t, c, "stop", "top"); r.code != 0 {
		t.Fatalf("stop top:\n%s", r)
	}
	file := filepath.Join(dir, "services", "top.toml")
	b, _ := os.ReadFile(file)
	if err := os.WriteFile(file, append([]byte("description = \"changed\"\n"), b...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := cli(t, c, "reload", "--timeout", "60s")
	if r.code != 0 || !strings.Contains(r.out, "update  top (stopped by an operator: stays stopped") || strings.Contains(r.out, "restart top") {
		t.Errorf("reload of a stopped, changed service:\n%s", r)
	}
	rep, err := c.Client.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s := testutil.Svc(rep, "top"); s.State.String() != "stopped" {
		t.Errorf("top after the reload: %s", s.State)
	}
	if r := cli(t, c, "start", "top"); r.code != 0 {
		t.Errorf("start top after the reload:\n%s", r)
	}
}

// `corral start` of a service held back by a crash-looping requirement
// says so when the requirement fails again, instead of waiting out its
// timeout.
func TestStartBehindAFailingRequirementEnds(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// never READY=1: crashy never counts as started, so waiter waits
		"crashy": payloadExec(t, "sleep", "1h") + "notify = true\nstart_timeout = \"1s\"\nrestart_delay = \"1s\"\nrestart_delay_max = \"1s\"\n[network]\nmode = \"none\"\n",
		"waiter": payloadExec(t, "sleep", "1h") + "requires = [\"crashy\"]\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "crashy backing off", stateIs("crashy", "backoff"))
	r := cli(t, c, "start", "--timeout", "60s", "waiter")
	if r.code != 1 || !strings.Contains(r.err, "waiting for crashy; crashy is backoff: no READY=1 within 1s") {
		t.Errorf("start behind a crash loop:\n%s", r)
	}
}
