//go:build integration

package main

import (
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

// Real sd_notify clients in real containers: go-systemd (the payload),
// systemd-notify(1) and libsystemd's sd_notify(3) from C.

func history(t *testing.T, c *testutil.Corral, svc string) []string {
	t.Helper()
	s, err := c.Client.Service(svc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range s.History {
		out = append(out, h.From+">"+h.To+": "+h.Reason)
	}
	return out
}

func waitCorralLog(t *testing.T, c *testutil.Corral, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.Log(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("corral never logged %q", want)
}

func TestNotifyAccessMainVersusAll(t *testing.T) {
	t.Parallel()
	child := payloadExec(t, "sdnotify", "+child", "+sleep=100ms", "READY=1")
	dir := writeConfig(t, testNet, map[string]string{
		"strict": child + "notify = true\nstart_timeout = \"2s\"\nrestart = \"never\"\n[network]\nmode = \"none\"\n",
		"open":   child + "notify = true\nnotify_access = \"all\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "open running, strict failed", func(r api.StatusReply) bool {
		return testutil.Svc(r, "open").State.String() == "running" && testutil.Svc(r, "strict").State.String() == "failed"
	})
	if r := testutil.Svc(rep, "strict").Reason; !strings.Contains(r, "no READY=1 within 2s") {
		t.Errorf("strict: %q", r)
	}
	// The rejection is logged with both pids.
	waitCorralLog(t, c, "rejected: notify_access is main and the main process is pid")
}

func TestSystemdNotifyToolWhoseSenderExitsAtOnce(t *testing.T) {
	t.Parallel()
	tool, err := exec.LookPath("systemd-notify")
	if err != nil {
		t.Skip("systemd-notify not installed (Debian's systemd package)")
	}
	dir := writeConfig(t, testNet, map[string]string{
		// systemd-notify sends from its own pid and exits right away: the
		// datagram must still count (notify_access = all, as systemd needs).
		"tool": `exec = ["/bin/sh", "-c", "` + tool + ` --ready --status='from systemd-notify'; exec /bin/sleep 3600"]
notify = true
notify_access = "all"
start_timeout = "10s"
stop_timeout = "1s"
[network]
mode = "none"
`,
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "tool running", running("tool"))
	if s := testutil.Svc(rep, "tool").Status; s != "from systemd-notify" {
		t.Errorf("status %q", s)
	}
}

// cClient builds the libsystemd client into its own directory, bound into
// the container like the payload.
func cClient(t *testing.T) string {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	if _, err := os.Stat("/usr/include/systemd/sd-daemon.h"); err != nil {
		t.Skip("libsystemd-dev not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command(cc, "-O2", "-o", filepath.Join(dir, "c-client"), "../internal/testutil/csdnotify/client.c", "-lsystemd").CombinedOutput()
	if err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	return dir
}

func TestLibsystemdClientWithWatchdogAndBarrier(t *testing.T) {
	t.Parallel()
	bin := cClient(t)
	dir := writeConfig(t, testNet, map[string]string{
		"c": `exec = ["/run/c/c-client"]
notify = true
watchdog = "1s"
[[container.mounts]]
source = "` + bin + `"
target = "/run/c"
[network]
mode = "none"
`,
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "c running", running("c"))
	if s := testutil.Svc(rep, "c").Status; s != "c client ready" {
		t.Errorf("status %q", s)
	}
	// WATCHDOG_USEC and WATCHDOG_PID were exported the way libsystemd reads them.
	waitLog(t, c, "c", "watchdog 1 (1000000 us)")
	// sd_notify_barrier returns 1 once corral closed the passed fd, after
	// everything sent before it was handled (-ETIMEDOUT otherwise).
	waitLog(t, c, "c", "sd_notify_barrier returned 1")
	// It pings every 100ms: still running, not restarted, well past the 1s deadline.
	time.Sleep(2500 * time.Millisecond)
	rep, _ = c.Client.Status()
	if s := testutil.Svc(rep, "c"); s.State.String() != "running" || s.Restarts != 0 {
		t.Errorf("c is %s with %d restarts: %v", s.State, s.Restarts, history(t, c, "c"))
	}
}

func TestOversizedDatagramDroppedAndFDsClosed(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// The 5 KiB datagram says READY=1 too, but it is truncated: dropped.
		"noisy": payloadExec(t, "sdnotify", "+big", "+sleep=1s", "+fd") + "notify = true\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "noisy running", running("noisy"))
	waitLog(t, c, "noisy", "the receiver closed it: true")
	s, _ := c.Client.Service("noisy")
	var exec, ready time.Time
	for _, h := range s.History {
		if h.Event == "exec" {
			exec = h.Time
		}
		if h.To == "running" {
			ready = h.Time
		}
	}
	if ready.Sub(exec) < 800*time.Millisecond {
		t.Errorf("running %s after exec: the truncated READY=1 counted", ready.Sub(exec))
	}
}

func TestSpoofedReadyFromAnotherService(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"victim": payloadExec(t, "trap-term", "1h") + "notify = true\nnotify_access = \"all\"\nstart_timeout = \"3s\"\nrestart = \"never\"\n[network]\nmode = \"none\"\n",
		// It gets the victim's notify directory bound in (retrying until the
		// victim has bound its socket) and sends READY=1 to it.
		"spoofer": payloadExec(t, "sdnotify", "+sleep=300ms", "+to=/run/spoof/notify.sock:READY=1", "+sleep=300ms", "+to=/run/spoof/notify.sock:READY=1") + `restart_delay = "50ms"
restart_delay_max = "100ms"
[[container.mounts]]
source = "/run/corral/svc/victim/notify"
target = "/run/spoof"
read_only = false
[network]
mode = "none"
`,
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "victim failed", stateIs("victim", "failed"))
	if r := testutil.Svc(rep, "victim").Reason; !strings.Contains(r, "no READY=1") {
		t.Errorf("victim: %q", r)
	}
	waitCorralLog(t, c, "not a process of the service")
}

func TestMainPidFromInsideThePidNamespace(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// The main process hands over to a child (MAINPID=<its pid inside
		// the namespace>); the child's READY=1 then counts under "main".
		"handover": payloadExec(t, "sdnotify", "+mainpid-child", "+sleep=300ms", "READY=1") + "notify = true\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "handover running", running("handover"))
	waitCorralLog(t, c, "main process changed (MAINPID=)")
	// The status pid is the child now, as corral sees it: a process of the
	// service's cgroup that is not the namespace's init.
	pid := testutil.Svc(rep, "handover").Pid
	found := false
	for _, hp := range hostPids(t, c, "handover") {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(hp) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			f := strings.Fields(line)
			// NSpid: host, corral's namespace, the service's namespace
			if len(f) == 4 && f[0] == "NSpid:" && f[2] == strconv.Itoa(pid) {
				found = true
				if f[3] == "1" {
					t.Errorf("status pid %d is still the namespace's init", pid)
				}
			}
		}
	}
	if !found {
		t.Errorf("status pid %d is not a process of the service", pid)
	}
}

func TestExtendTimeoutKeepsASlowStartAlive(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"slow": payloadExec(t, "sdnotify", "+sleep=500ms", "EXTEND_TIMEOUT_USEC=4000000", "+sleep=1500ms", "READY=1") +
			"notify = true\nstart_timeout = \"1s\"\nrestart = \"never\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "slow running", running("slow"))
}

func TestWatchdogPingsStopThenRestart(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"pinger": payloadExec(t, "sdnotify", "READY=1", "+every=200ms:6:WATCHDOG=1") + `notify = true
watchdog = "700ms"
restart = "always"
restart_delay = "100ms"
[network]
mode = "none"
`,
		"env": payloadExec(t, "env") + "watchdog = \"3s\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	waitLog(t, c, "env", "WATCHDOG_USEC=3000000")
	waitLog(t, c, "env", "WATCHDOG_PID=1")
	c.WaitFor(30*time.Second, "pinger restarted after a watchdog timeout", func(r api.StatusReply) bool {
		return testutil.Svc(r, "pinger").Restarts >= 1
	})
	h := strings.Join(history(t, c, "pinger"), "\n")
	if !strings.Contains(h, "running>stopping: watchdog timeout (no WATCHDOG=1 within 700ms)") {
		t.Errorf("history:\n%s", h)
	}
}

func TestReloadSignalAndCommand(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"app": payloadExec(t, "reloadable") + "notify = true\n[network]\nmode = \"none\"\n",
		"cmd": payloadExec(t, "trap-term", "1h") + `reload = ["` + payloadDir + `/corral-payload", "notify-raw", "STATUS=reloaded by the command"]
notify_access = "exec"
[container]
init = true
[network]
mode = "none"
`,
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("app", "cmd"))
	if err := c.Client.Action("app", "reload"); err != nil {
		t.Fatal(err)
	}
	rep := c.WaitFor(20*time.Second, "app reloaded", func(r api.StatusReply) bool {
		return testutil.Svc(r, "app").Status == "reloaded 1 times"
	})
	h := strings.Join(history(t, c, "app"), "\n")
	if !strings.Contains(h, "running>reloading: reload requested") || !strings.Contains(h, "reloading>running: reloaded (READY=1)") {
		t.Errorf("app history:\n%s", h)
	}
	if testutil.Svc(rep, "app").Restarts != 0 {
		t.Error("a reload restarted the service")
	}
	// The reload command runs inside the container; under notify_access =
	// exec its datagram counts.
	if err := c.Client.Action("cmd", "reload"); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(20*time.Second, "cmd status from its reload command", func(r api.StatusReply) bool {
		return testutil.Svc(r, "cmd").Status == "reloaded by the command"
	})
}
