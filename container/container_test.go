package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMountPlanOrder(t *testing.T) {
	cfg := childConfig{
		Spec:      Spec{Mounts: []Mount{{Type: MountBind, Source: "/srv/www", Target: "/var/www", ReadOnly: true}, {Type: MountTmpfs, Target: "/run/cache", Size: 1 << 20}}},
		NotifyDir: "/run/corral/svc/web/notify",
		Files:     []fileBind{{Source: "/run/corral/svc/web/hosts", Target: "/etc/hosts", FD: 5}},
	}
	var got []string
	for _, s := range mountPlan(cfg, "/stage") {
		got = append(got, s.String())
	}
	plan := strings.Join(got, "\n")
	order := []string{
		"bind / -> / (ro)",
		"detach /sys",
		"mount proc on /proc",
		"mount sysfs on /sys",
		"remount-ro /sys",
		"mount tmpfs on /dev",
		"mknod /dev/null c 1:3",
		"mount devpts on /dev/pts",
		"mount tmpfs on /run",
		"bind /run/corral/svc/web/notify -> /run/notify (ro)",
		"bind file /run/corral/svc/web/hosts -> /etc/hosts (ro, resolved in the root)",
		"bind /srv/www -> /var/www (ro)",
		"mount tmpfs on /run/cache (mode=755,size=1048576)",
	}
	last := -1
	for _, w := range order {
		i := strings.Index(plan, w)
		if i < 0 {
			t.Fatalf("plan has no %q:\n%s", w, plan)
		}
		if i < last {
			t.Errorf("%q comes too early in:\n%s", w, plan)
		}
		last = i
	}
	for _, s := range mountPlan(cfg, "/stage") {
		if !strings.HasPrefix(s.Target, "/stage") {
			t.Errorf("step %s targets %s, outside the staging root", s, s.Target)
		}
	}
}

func TestResolveCredentials(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nweb:x:100:101::/srv:/bin/sh\n"
	group := "root:x:0:\nnogroup:x:65534:\nwww:x:101:\nlog:x:4:web,other\n"
	tests := []struct {
		user, group string
		want        Credentials
		err         string
	}{
		{"", "", Credentials{Home: "/", Name: "root"}, ""},
		{"web", "", Credentials{UID: 100, GID: 101, Groups: []uint32{101, 4}, Home: "/srv", Name: "web"}, ""},
		{"web", "nogroup", Credentials{UID: 100, GID: 65534, Groups: []uint32{65534, 4}, Home: "/srv", Name: "web"}, ""},
		{"1234", "", Credentials{UID: 1234, GID: 1234, Groups: []uint32{1234}, Home: "/", Name: "1234"}, ""},
		{"65534", "", Credentials{UID: 65534, GID: 65534, Groups: []uint32{65534}, Home: "/nonexistent", Name: "nobody"}, ""},
		{"ghost", "", Credentials{}, `user "ghost" not found in /etc/passwd`},
		{"web", "ghosts", Credentials{}, `group "ghosts" not found in /etc/group`},
	}
	for _, tt := range tests {
		got, err := resolveCredentials(tt.user, tt.group, strings.NewReader(passwd), strings.NewReader(group))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s/%s: err %v, want %s", tt.user, tt.group, err, tt.err)
			}
			continue
		}
		if err != nil || got.UID != tt.want.UID || got.GID != tt.want.GID || got.Home != tt.want.Home ||
			got.Name != tt.want.Name || fmt.Sprint(got.Groups) != fmt.Sprint(tt.want.Groups) {
			t.Errorf("%s/%s: got %+v %v, want %+v", tt.user, tt.group, got, err, tt.want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	got := parseProcCgroupData([]byte("9:name=systemd:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/init.scope\n"))
	want := map[string]string{"name=systemd": "/", "memory": "/process_api/abc", "cpu": "/x", "cpuacct": "/x", "": "/init.scope"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %q, want %q", k, got[k], v)
		}
	}
}

func TestParseCgroupMounts(t *testing.T) {
	mi := `25 1 253:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:9 - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
33 25 0:29 / /sys/fs/cgroup/my\040pids rw - cgroup cgroup rw,pids
`
	got := parseCgroupMountsData([]byte(mi))
	want := map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/my pids"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %q, want %q", k, got[k], v)
		}
	}
}

// fakeV2 builds a cgroup2 tree in a temp dir: what the kernel would show
// at the root, with the given controllers.
func fakeV2(t *testing.T, controllers string) (CgroupOptions, string) {
	root := t.TempDir()
	proc := t.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte(controllers+"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), nil, 0o644)
	os.WriteFile(filepath.Join(proc, "cgroup"), []byte("0::/\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "corral"), 0o755)
	os.WriteFile(filepath.Join(root, "corral", "cgroup.subtree_control"), nil, 0o644)
	return CgroupOptions{Mount: root, ProcSelf: proc, Prefix: "corral"}, root
}

func TestV2WritesLimitsIntoTheGroup(t *testing.T) {
	o, root := fakeV2(t, "cpuset cpu io memory pids")
	// The kernel makes these files in every new group; the fake must too.
	os.MkdirAll(filepath.Join(root, "corral", "web"), 0o755)
	for _, f := range []string{"web/memory.max", "web/memory.swap.max", "web/cpu.max", "web/pids.max"} {
		os.WriteFile(filepath.Join(root, "corral", f), nil, 0o644)
	}
	c, err := OpenCgroups(o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != CgroupV2 || len(c.Missing()) != 0 {
		t.Fatalf("version %s missing %v", c.Version, c.Missing())
	}
	if got := readFile(t, filepath.Join(root, "cgroup.subtree_control")); got != "+memory +cpu +pids +io" {
		t.Errorf("root subtree_control %q", got)
	}
	g, err := c.Create("web", Limits{MemoryMax: 64 << 20, CPU: 1.5, PidsMax: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(g.FD())
	for file, want := range map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "cpu.max": "150000 100000", "pids.max": "100"} {
		if got := readFile(t, filepath.Join(root, "corral", "web", file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if g.FD() < 0 {
		t.Error("no directory fd for CLONE_INTO_CGROUP")
	}
}

func TestV2MissingControllerIsReportedNotIgnored(t *testing.T) {
	o, _ := fakeV2(t, "cpu pids")
	c, err := OpenCgroups(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Missing(), ","); got != "memory" {
		t.Errorf("missing %q, want memory", got)
	}
	_, err = c.Create("hog", Limits{MemoryMax: 1 << 30})
	if !errors.Is(err, ErrControllerUnavailable) {
		t.Errorf("err = %v, want ErrControllerUnavailable", err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestExitReason(t *testing.T) {
	tests := map[string]Exit{
		"exited 0":                               {Code: 0},
		"exited 3":                               {Code: 3},
		"killed by SIGSEGV":                      {Code: -1, Signal: 11},
		"oom-killed":                             {Code: -1, Signal: 9, OOMKilled: true},
		"exited 1 (oom-kill in cgroup)":          {Code: 1, OOMKilled: true},
		"killed by SIGTERM (oom-kill in cgroup)": {Code: -1, Signal: 15, OOMKilled: true},
	}
	for want, e := range tests {
		if got := e.Reason(); got != want {
			t.Errorf("%+v: %q, want %q", e, got, want)
		}
	}
}

func TestSweepRemovesWhatAnEarlierRunLeft(t *testing.T) {
	o, root := fakeV2(t, "cpu memory pids")
	sub := filepath.Join(root, "corral")
	os.WriteFile(filepath.Join(sub, "cgroup.kill"), nil, 0o644)
	os.MkdirAll(filepath.Join(sub, "web"), 0o755)
	os.MkdirAll(filepath.Join(sub, "db", "nested"), 0o755)
	c, err := OpenCgroups(o)
	if err != nil {
		t.Fatal(err)
	}
	names, err := c.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names) != "[db web]" {
		t.Errorf("swept %v, want [db web]", names)
	}
	if got := readFile(t, filepath.Join(sub, "cgroup.kill")); got != "1" {
		t.Errorf("the subtree's cgroup.kill = %q, want 1: one write kills everything below", got)
	}
	for _, d := range []string{"web", "db", "db/nested"} {
		if _, err := os.Stat(filepath.Join(sub, d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there: %v", d, err)
		}
	}
	if names, err := c.Sweep(); names != nil || err != nil {
		t.Errorf("second Sweep = %v, %v; want nothing to do", names, err)
	}
}
