//go:build integration

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/internal/testutil"
	"github.com/corral-init/corral/supervisor/config"
)

// attempts collects the payload's "ATTEMPT name: result" lines.
func attempts(t *testing.T, c *testutil.Corral, svc string) map[string]string {
	t.Helper()
	waitLog(t, c, svc, "ATTEMPT visible_processes")
	rep, err := c.Client.Logs(svc, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range rep.Lines {
		if rest, ok := strings.CutPrefix(l.Text, "ATTEMPT "); ok {
			k, v, _ := strings.Cut(rest, ": ")
			out[k] = v
		}
	}
	return out
}

func TestDefaultSandboxRefusesEscapes(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	// Another service's files: a directory only "keeper" has bound.
	secret := t.TempDir()
	os.WriteFile(filepath.Join(secret, "secret"), []byte("s3cret"), 0o644)
	dir := writeConfig(t, testNet, map[string]string{
		"jail":   payloadExec(t, "escape", "1h", filepath.Join(secret, "secret")) + "[network]\nmode = \"none\"\n",
		"keeper": payloadExec(t, "sleep", "1h") + fmt.Sprintf("[network]\nmode = \"none\"\n[[container.mounts]]\nsource = %q\ntarget = \"/mnt\"\n", secret),
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("jail", "keeper"))
	got := attempts(t, c, "jail")
	want := map[string]string{
		"mount":       "operation not permitted",
		"pivot_root":  "operation not permitted",
		"load_module": "operation not permitted",
		"raw_socket":  "operation not permitted",
		"ptrace":      "operation not permitted",
		"mknod":       "operation not permitted",
		"sethostname": "operation not permitted",
		"unshare_net": "operation not permitted",
		"reboot":      "operation not permitted",
		// read-only bind mounts: the kernel says EROFS
		"write_proc_sys": "read-only file system",
		"sysrq_trigger":  "read-only file system",
		// masked: /dev/null reads as empty
		"kcore": "EOF",
		// not even visible: only its own binds reach a container
		"read_other":             "no such file or directory",
		"proc1_root_is_own_root": "true",
	}
	// These two exist only where the kernel has them (this CI kernel has
	// neither /proc/kcore nor sysrq); then the attempt finds nothing.
	for _, p := range []struct{ key, path string }{{"sysrq_trigger", "/proc/sysrq-trigger"}, {"kcore", "/proc/kcore"}} {
		if _, err := os.Stat(p.path); err != nil {
			want[p.key] = "no such file or directory"
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if n := got["visible_processes"]; n != "1" {
		t.Errorf("the jail sees %s processes in /proc, want only itself", n)
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("the host's hostname changed to %q", h)
	}
	// What took effect, read from the host.
	st := readTrim(t, fmt.Sprintf("/proc/%d/status", mainHostPid(t, c, "jail")))
	caps, _ := container.CapMask(container.DefaultCaps)
	for _, w := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", fmt.Sprintf("CapBnd:\t%016x", caps), fmt.Sprintf("CapEff:\t%016x", caps)} {
		if !strings.Contains(st, w) {
			t.Errorf("status lacks %q:\n%s", w, st)
		}
	}
}

func TestRequestedCapabilityAndUser(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		// as nobody, with CAP_NET_RAW asked for: ambient, so a raw socket works
		"pinger": payloadExec(t, "escape") + "user = \"nobody\"\ncapabilities = [\"CAP_NET_RAW\"]\n[network]\nmode = \"none\"\n",
		// as nobody without: nothing at all
		"plain": payloadExec(t, "escape") + "user = \"nobody\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "running", running("pinger", "plain"))
	if got := attempts(t, c, "pinger")["raw_socket"]; got != "ok" {
		t.Errorf("pinger raw socket: %q, want ok (CAP_NET_RAW asked for)", got)
	}
	if got := attempts(t, c, "plain")["raw_socket"]; got != "operation not permitted" {
		t.Errorf("plain raw socket: %q", got)
	}
	st := readTrim(t, fmt.Sprintf("/proc/%d/status", mainHostPid(t, c, "plain")))
	if !strings.Contains(st, "CapEff:\t0000000000000000") {
		t.Errorf("a non-root service without capabilities has some:\n%s", st)
	}
	st = readTrim(t, fmt.Sprintf("/proc/%d/status", mainHostPid(t, c, "pinger")))
	if !strings.Contains(st, "CapAmb:\t0000000000002000") {
		t.Errorf("pinger's ambient set is not CAP_NET_RAW:\n%s", st)
	}
}

func TestSandboxThatCannotApplyFailsTheStart(t *testing.T) {
	// Pretend this kernel has no seccomp, for these two services.
	t.Setenv("CORRAL_FAULT_NO_SECCOMP", "strict")
	dir := writeConfig(t, testNet, map[string]string{
		"strict": payloadExec(t, "sleep", "1h") + "restart = \"never\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "strict failed", stateIs("strict", "failed"))
	if r := testutil.Svc(rep, "strict").LastExit; !strings.Contains(r, "sandbox not applied: the seccomp filter is not installed (Seccomp: 0)") {
		t.Errorf("strict: %q", r)
	}
}

func TestAllowDegradedRunsMarked(t *testing.T) {
	t.Setenv("CORRAL_FAULT_NO_SECCOMP", "lenient")
	dir := writeConfig(t, testNet, map[string]string{
		"lenient": payloadExec(t, "sleep", "1h") + "allow_degraded = true\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	rep := c.WaitFor(20*time.Second, "lenient running", running("lenient"))
	if d := testutil.Svc(rep, "lenient").Degraded; len(d) != 1 || !strings.Contains(d[0], "seccomp filter is not installed") {
		t.Errorf("degraded = %q", d)
	}
}

func TestUserNamespacedService(t *testing.T) {
	t.Parallel()
	// Its own data: a directory the admin gave to the service's id range
	// (the block is picked from the name, so the test asks corral check).
	data := t.TempDir()
	secret := filepath.Join(t.TempDir(), "root-only")
	// Bind sources are reached as the service's host uid: the test's own
	// 0700 temp directory must let it pass (not list).
	os.Chmod(filepath.Dir(data), 0o711)
	os.WriteFile(secret, []byte("host root's"), 0o600)
	body := payloadExec(t, "sdnotify", "+sleep=10ms") + fmt.Sprintf(`[container]
user_namespace = true
[network]
mode = "none"
[[container.mounts]]
source = %q
target = "/mnt"
read_only = false
[[container.mounts]]
source = %q
target = "/run/secret"
`, data, secret)
	dir := writeConfig(t, testNet, map[string]string{"unpriv": body})
	cfg, err := config.Load(dir)
	if err != nil || cfg.Service("unpriv") == nil {
		t.Fatalf("load: %v", err)
	}
	base := int(cfg.Service("unpriv").Container.UserNS.HostID)
	if err := os.Chown(data, base, base); err != nil {
		t.Fatal(err)
	}
	// Now the real run: it writes into its bind and its tmpfs, and a second
	// one tries to read a file only the host's root may.
	dir = writeConfig(t, testNet, map[string]string{
		"unpriv": strings.Replace(body, `"sdnotify", "+sleep=10ms"`, `"write", "/mnt/written", "/tmp/ok"`, 1),
		"reader": strings.Replace(strings.Replace(body, `"sdnotify", "+sleep=10ms"`, `"cat", "/run/secret"`, 1), "[container]", "restart = \"never\"\n[container]", 1),
	})
	c := testutil.StartCorral(t, dir)
	waitLog(t, c, "unpriv", "write /tmp/ok: ok")
	waitLog(t, c, "unpriv", "write /mnt/written: ok")
	waitLog(t, c, "reader", "permission denied")
	if st, err := os.Stat(filepath.Join(data, "written")); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(base) {
		t.Errorf("the file it wrote: %v, owner %v, want uid %d (its root, on the host)", err, st, base)
	}
	// A long-running one: root inside, base outside; its cgroup is its own.
	dir = writeConfig(t, testNet, map[string]string{"unpriv": strings.Replace(body,
		`"sdnotify", "+sleep=10ms"`, `"ns"`, 1)})
	c2 := testutil.StartCorral(t, dir)
	waitLog(t, c2, "unpriv", "uid=0 gid=0")
	pid := mainHostPid(t, c2, "unpriv")
	if st := readTrim(t, fmt.Sprintf("/proc/%d/status", pid)); !strings.Contains(st, fmt.Sprintf("Uid:\t%d\t%d", base, base)) {
		t.Errorf("outside, the service is not uid %d:\n%s", base, st)
	}
	for _, root := range testutil.CgroupDirs(c2.Prefix) {
		st, err := os.Stat(filepath.Join(root, "unpriv"))
		if err == nil && st.Sys().(*syscall.Stat_t).Uid != uint32(base) {
			t.Errorf("cgroup %s is not delegated to uid %d", root, base)
		}
	}
}

// cpus is applied as asked or the start fails: the kernel would pin to the
// CPUs that exist and drop the rest without a word.
func TestCPUAffinityAppliedOrRefused(t *testing.T) {
	t.Parallel()
	dir := writeConfig(t, testNet, map[string]string{
		"pinned":  payloadExec(t, "sleep", "1h") + "cpus = [0]\n[network]\nmode = \"none\"\n",
		"partial": payloadExec(t, "sleep", "1h") + "cpus = [0, 999]\nrestart = \"never\"\n[network]\nmode = \"none\"\n",
	})
	c := testutil.StartCorral(t, dir)
	c.WaitFor(20*time.Second, "pinned running", running("pinned"))
	st := readTrim(t, fmt.Sprintf("/proc/%d/status", mainHostPid(t, c, "pinned")))
	if !strings.Contains(st, "Cpus_allowed_list:\t0\n") {
		t.Errorf("pinned to cpus = [0]:\n%s", st)
	}
	rep := c.WaitFor(20*time.Second, "partial failed", stateIs("partial", "failed"))
	if r := testutil.Svc(rep, "partial").LastExit; !strings.Contains(r, "CPUs [999] do not exist or are not allowed here") {
		t.Errorf("partial: %q", r)
	}
	// A failed launch leaves no state directory of the service behind.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/corral/svc/partial", c.Pid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("svc/partial after the failed launch: %v", err)
	}
}
