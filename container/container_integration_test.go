//go:build integration

package container_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/internal/reaper"
	"github.com/corral-init/corral/internal/testutil"
)

// env is a Runtime in this test process: its own reaper, a unique cgroup
// subtree (removed at the end) and a staging directory.
type env struct {
	rt      *container.Runtime
	payload string
	prefix  string
	notes   []string // the last runFiles' Process.Notes
}

func newEnv(t testing.TB) *env {
	testutil.RequireRoot(t)
	corral, payload := testutil.Binaries(t)
	prefix := fmt.Sprintf("corral-ctest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	cg, err := container.OpenCgroups(container.CgroupOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	rp := reaper.New()
	t.Cleanup(func() {
		rp.Close()
		testutil.RemoveCgroupTree(t, prefix)
	})
	return &env{rt: &container.Runtime{Cgroups: cg, Reaper: rp, Self: corral, Staging: t.TempDir()}, payload: payload, prefix: prefix}
}

// payloadDir is where containers see the payload: its host directory may be
// under /tmp, which every container gets a fresh tmpfs over.
const payloadDir = "/run/corral-test"

func (e *env) payloadMount() container.Mount {
	return container.Mount{Type: container.MountBind, Source: filepath.Dir(e.payload), Target: payloadDir, ReadOnly: true}
}

// run starts spec, collects its output until it exits, and returns both.
func (e *env) run(t *testing.T, spec container.Spec) (string, container.Exit, error) {
	t.Helper()
	return e.runFiles(t, spec, nil)
}

// runFiles is run with files bound over the container's root.
func (e *env) runFiles(t *testing.T, spec container.Spec, files []container.FileMount) (string, container.Exit, error) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan container.Exit, 1)
	if len(spec.Args) > 0 && spec.Args[0] == e.payload {
		spec.Args[0] = payloadDir + "/" + filepath.Base(e.payload)
		spec.Mounts = append([]container.Mount{e.payloadMount()}, spec.Mounts...)
	}
	p, err := e.rt.Start(container.StartOptions{Spec: spec, Output: pw, Files: files, OnExit: func(x container.Exit) { exited <- x }})
	pw.Close()
	if err != nil {
		pr.Close()
		return "", container.Exit{}, err
	}
	e.notes = p.Notes
	out, _ := io.ReadAll(pr)
	pr.Close()
	var x container.Exit
	select {
	case x = <-exited:
	case <-time.After(20 * time.Second):
		t.Fatal("no exit delivered")
	}
	if err := p.Cleanup(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	return string(out), x, nil
}

func TestExecFailureIsAReadableTypedError(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.run(t, container.Spec{Name: "noexec", Args: []string{"/nonexistent/daemon"}, HostNetwork: true})
	var ce *container.ChildError
	if !errors.As(err, &ce) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v (%T), want a ChildError wrapping ENOENT", err, err)
	}
	if err.Error() != "exec /nonexistent/daemon: no such file or directory" {
		t.Errorf("message %q", err.Error())
	}
	if left := testutil.CgroupDirs(e.prefix); len(left) > 0 {
		for _, d := range left {
			if entries, _ := os.ReadDir(d); len(entries) > 0 && hasDir(entries) {
				t.Errorf("a failed start left a cgroup in %s: %v", d, entries)
			}
		}
	}
}

func hasDir(es []os.DirEntry) bool {
	for _, e := range es {
		if e.IsDir() {
			return true
		}
	}
	return false
}

func TestRootIsReadOnlyAndPrivateDirsAreWritable(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "data.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, x, err := e.run(t, container.Spec{
		Name: "fs", Args: []string{e.payload, "write", "/etc/corral-test", "/tmp/ok", "/run/ok", "/dev/shm/ok", "/mnt/new"},
		HostNetwork: true,
		Mounts: []container.Mount{
			{Type: container.MountBind, Source: src, Target: "/mnt", ReadOnly: true},
		},
	})
	if err != nil || !x.Success() {
		t.Fatalf("run: %v %s\n%s", err, x.Reason(), out)
	}
	for _, want := range []string{
		"write /etc/corral-test: read-only file system",
		"write /tmp/ok: ok", "write /run/ok: ok", "write /dev/shm/ok: ok",
		"write /mnt/new: read-only file system",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if _, err := os.Stat("/etc/corral-test"); err == nil {
		t.Error("the container wrote into the host's /etc")
	}
	out, _, err = e.run(t, container.Spec{Name: "fs2", Args: []string{e.payload, "cat", "/mnt/data.txt"}, HostNetwork: true,
		Mounts: []container.Mount{{Type: container.MountBind, Source: src, Target: "/mnt", ReadOnly: true}}})
	if err != nil || out != "from the host" {
		t.Errorf("bind mount read: %q %v", out, err)
	}
}

func TestMissingMountTargetSaysWhatToDo(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.run(t, container.Spec{Name: "mnt", Args: []string{e.payload, "exit", "0"}, HostNetwork: true,
		Mounts: []container.Mount{{Type: container.MountTmpfs, Target: "/no-such-dir-in-root"}}})
	if err == nil || !strings.Contains(err.Error(), "mount /no-such-dir-in-root: target does not exist in the read-only root") {
		t.Errorf("err = %v", err)
	}
	// Inside a tmpfs corral made, a missing target is created.
	out, x, err := e.run(t, container.Spec{Name: "mnt2", Args: []string{e.payload, "write", "/tmp/sub/dir/f"}, HostNetwork: true,
		Mounts: []container.Mount{{Type: container.MountTmpfs, Target: "/tmp/sub/dir"}}})
	if err != nil || !x.Success() || !strings.Contains(out, "write /tmp/sub/dir/f: ok") {
		t.Errorf("tmpfs under /tmp: %v %s %q", err, x.Reason(), out)
	}
}

func TestCgroupLimitsAndExitReasons(t *testing.T) {
	e := newEnv(t)
	out, x, err := e.run(t, container.Spec{Name: "hog", Args: []string{e.payload, "alloc", "256"}, HostNetwork: true,
		Limits: container.Limits{MemoryMax: 32 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if !x.OOMKilled || x.Reason() != "oom-killed" {
		t.Errorf("exit %+v (%s), want oom-killed; output:\n%s", x, x.Reason(), out)
	}
	_, x, err = e.run(t, container.Spec{Name: "three", Args: []string{e.payload, "exit", "3"}, HostNetwork: true})
	if err != nil || x.Code != 3 || x.Reason() != "exited 3" {
		t.Errorf("exit %+v %v", x, err)
	}
}

func TestUnavailableControllerFailsTheStart(t *testing.T) {
	testutil.RequireRoot(t)
	corral, payload := testutil.Binaries(t)
	// A fake v1 layout with only a pids hierarchy: asking for memory must
	// fail, not run unlimited.
	root := t.TempDir()
	proc := t.TempDir()
	pids := filepath.Join(root, "pids")
	os.MkdirAll(pids, 0o755)
	os.WriteFile(filepath.Join(proc, "cgroup"), []byte("1:pids:/\n0::/\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "mountinfo"), []byte("30 20 0:26 / "+pids+" rw - cgroup cgroup rw,pids\n"), 0o644)
	cg, err := container.OpenCgroups(container.CgroupOptions{Mount: root, ProcSelf: proc, Version: container.CgroupV1})
	if err != nil {
		t.Fatal(err)
	}
	rp := reaper.New()
	defer rp.Close()
	rt := &container.Runtime{Cgroups: cg, Reaper: rp, Self: corral, Staging: t.TempDir()}
	_, err = rt.Start(container.StartOptions{Spec: container.Spec{Name: "x", Args: []string{payload, "exit", "0"}, Limits: container.Limits{MemoryMax: 64 << 20}}})
	if !errors.Is(err, container.ErrControllerUnavailable) || !strings.Contains(err.Error(), "memory") {
		t.Errorf("err = %v, want ErrControllerUnavailable naming memory", err)
	}
}

func TestHiddenDirectoriesStayHiddenButTakeMounts(t *testing.T) {
	e := newEnv(t)
	// A directory on the root file system (not /tmp, which every container
	// gets fresh anyway), as the data partition would be.
	data, err := os.MkdirTemp("/var/tmp", "corral-hide-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(data)
	os.MkdirAll(filepath.Join(data, "other"), 0o755)
	os.WriteFile(filepath.Join(data, "other", "secret"), []byte("s3cret"), 0o644)
	os.MkdirAll(filepath.Join(data, "mine"), 0o755)
	os.WriteFile(filepath.Join(data, "mine", "state"), []byte("mine"), 0o644)

	out, _, err := e.run(t, container.Spec{Name: "seen", Args: []string{e.payload, "cat", filepath.Join(data, "other", "secret")}, HostNetwork: true})
	if err != nil || out != "s3cret" {
		t.Fatalf("without Hide the directory is visible (read-only): %q %v", out, err)
	}
	out, x, err := e.run(t, container.Spec{Name: "hidden", Args: []string{e.payload, "cat", filepath.Join(data, "other", "secret")}, HostNetwork: true,
		Security: container.Security{Hide: []string{data}}})
	if err != nil || x.Success() {
		t.Errorf("with Hide the secret was read: %q %v %s", out, err, x.Reason())
	}
	out, x, err = e.run(t, container.Spec{Name: "own", Args: []string{e.payload, "cat", filepath.Join(data, "mine", "state")}, HostNetwork: true,
		Security: container.Security{Hide: []string{data}},
		Mounts:   []container.Mount{{Type: container.MountBind, Source: filepath.Join(data, "mine"), Target: filepath.Join(data, "mine"), ReadOnly: true}}})
	if err != nil || out != "mine" {
		t.Errorf("a service's own bind under a hidden directory: %q %v %s", out, err, x.Reason())
	}
}

// TestFilesResolvedInsideTheRoot binds files over targets that are a
// plain file, a relative symlink into /tmp (Buildroot's resolv.conf) and
// an absolute one into /run (systemd-resolved's): each lands in the
// container's own tree, created there when missing, never in the host's.
func TestFilesResolvedInsideTheRoot(t *testing.T) {
	e := newEnv(t)
	root := t.TempDir()
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "etc"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("the image's hosts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../tmp/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	hostPath := "/run/corral-test-resolved-" + filepath.Base(root) + "/stub.conf"
	if err := os.Symlink(hostPath, filepath.Join(root, "etc/abs.conf")); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	var files []container.FileMount
	for _, f := range []string{"hosts", "resolv.conf", "abs.conf"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte("corral's "+f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, container.FileMount{Source: filepath.Join(src, f), Target: "/etc/" + f})
	}
	out, x, err := e.runFiles(t, container.Spec{
		Name: "files", Rootfs: root, HostNetwork: true,
		Args: []string{e.payload, "cat", "/etc/hosts", "/etc/resolv.conf", "/etc/abs.conf", "/tmp/resolv.conf", hostPath},
	}, files)
	if err != nil || !x.Success() {
		t.Fatalf("run: %v %s\n%s", err, x.Reason(), out)
	}
	want := "corral's hosts\ncorral's resolv.conf\ncorral's abs.conf\ncorral's resolv.conf\ncorral's abs.conf\n"
	if out != want {
		t.Errorf("the container read:\n%s\nwant:\n%s", out, want)
	}
	if _, err := os.Stat(filepath.Dir(hostPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the absolute symlink was followed on the host: %s exists (%v)", filepath.Dir(hostPath), err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "the image's hosts\n" {
		t.Errorf("the image's /etc/hosts changed: %q", b)
	}

	// A target that cannot exist in the read-only root fails the start,
	// saying what to do.
	_, _, err = e.runFiles(t, container.Spec{Name: "files2", Rootfs: root, HostNetwork: true, Args: []string{e.payload, "exit", "0"}},
		[]container.FileMount{{Source: filepath.Join(src, "hosts"), Target: "/etc/missing"}})
	if err == nil || err.Error() != "mount /etc/missing: target /etc/missing does not exist in the read-only root (create it in the image): no such file or directory" {
		t.Errorf("missing target in the read-only root: %v", err)
	}
	// Optional (the name files): the service runs without it, and the
	// supervisor hears why.
	out, x, err = e.runFiles(t, container.Spec{Name: "files3", Rootfs: root, HostNetwork: true, Args: []string{e.payload, "cat", "/etc/hosts"}},
		[]container.FileMount{{Source: filepath.Join(src, "hosts"), Target: "/etc/missing", Optional: true},
			{Source: filepath.Join(src, "hosts"), Target: "/etc/hosts", Optional: true}})
	if err != nil || !x.Success() || out != "corral's hosts\n" {
		t.Fatalf("optional missing target: %v %s %q", err, x.Reason(), out)
	}
	if len(e.notes) != 1 || !strings.HasPrefix(e.notes[0], "/etc/missing not bound") {
		t.Errorf("notes = %q, want one for /etc/missing", e.notes)
	}
}

// TestSweepKillsWhatAKilledSupervisorLeft: a service keeps running after
// its runtime is gone (a supervisor killed with SIGKILL); the next one
// finds it in the subtree, kills it and removes its group.
func TestSweepKillsWhatAKilledSupervisorLeft(t *testing.T) {
	e := newEnv(t)
	spec := container.Spec{Name: "orphan", Args: []string{payloadDir + "/" + filepath.Base(e.payload), "sleep", "1h"}, HostNetwork: true,
		Mounts: []container.Mount{e.payloadMount()}}
	exited := make(chan container.Exit, 1)
	p, err := e.rt.Start(container.StartOptions{Spec: spec, OnExit: func(x container.Exit) { exited <- x }})
	if err != nil {
		t.Fatal(err)
	}
	// The next supervisor opens the same subtree.
	cg, err := container.OpenCgroups(container.CgroupOptions{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	names, err := cg.Sweep()
	if err != nil || fmt.Sprint(names) != "[orphan]" {
		t.Fatalf("Sweep = %v, %v; want [orphan]", names, err)
	}
	select {
	case x := <-exited:
		if x.Signal != unix.SIGKILL {
			t.Errorf("the orphan ended %s, want killed by SIGKILL", x.Reason())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan still runs after Sweep")
	}
	_ = p.Cleanup()
	for _, d := range testutil.CgroupDirs(e.prefix) {
		if entries, _ := os.ReadDir(d); hasDir(entries) {
			t.Errorf("groups left in %s: %v", d, entries)
		}
	}
}

// TestVanishedSubtreeIsMadeAgain: corral's cgroup subtree removed under
// it (by hand, or by another corral's shutdown) is made again at the next
// start instead of failing every service for ever.
func TestVanishedSubtreeIsMadeAgain(t *testing.T) {
	e := newEnv(t)
	testutil.RemoveCgroupTree(t, e.prefix)
	out, x, err := e.run(t, container.Spec{Name: "again", HostNetwork: true, Args: []string{e.payload, "exit", "0"},
		Limits: container.Limits{MemoryMax: 64 << 20, PidsMax: 16}})
	if err != nil || !x.Success() {
		t.Fatalf("start after the subtree vanished: %v %s %q", err, x.Reason(), out)
	}
}

func TestMain(m *testing.M) { testutil.Main(m) }
