package config

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*/want.txt from the current output")

// wantDefault is the Service a file with only exec = ["/bin/x"] decodes to.
func wantDefault(dir, name string, args ...string) *Service {
	return &Service{
		Name:               name,
		File:               filepath.Join(dir, "services", name+".toml"),
		Restart:            RestartOnFailure,
		RestartDelay:       100 * time.Millisecond,
		RestartDelayMax:    30 * time.Second,
		StableAfter:        10 * time.Second,
		StartLimitInterval: 60 * time.Second,
		PermanentExitCodes: []int{125},
		StopSignal:         unix.SIGTERM,
		WatchdogSignal:     unix.SIGABRT,
		ReloadSignal:       unix.SIGHUP,
		StopTimeout:        10 * time.Second,
		StartTimeout:       30 * time.Second,
		Container: container.Spec{
			Name:     name,
			Args:     args,
			Env:      []string{"PATH=" + DefaultPath},
			Dir:      "/",
			Hostname: name,
			Security: container.Security{NoNewPrivs: true, Seccomp: true},
		},
		Net: cnet.Spec{Mode: cnet.ModeBridge},
	}
}

func TestLoadGood(t *testing.T) {
	const dir = "testdata/good"
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	if !cfg.Report(&report) {
		t.Fatalf("problems:\n%s", &report)
	}

	wantGlobal := Global{
		File:     filepath.Join(dir, "corral.toml"),
		Hostname: "box.example",
		Network:  cnet.BridgeConfig{Name: "br-test", Subnet: netip.MustParsePrefix("192.168.7.0/28")},
		DNS:      []netip.Addr{netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("2606:4700:4700::1111")},
		Log: LogConfig{Level: "debug", Format: "json", Dir: "/data/log", FileSize: 256 << 10, Keep: 5, TotalSize: 8 << 20,
			Rate: 0, Burst: 100, Syslog: Syslog{Network: "tcp", Addr: "10.0.0.5:6514"}},
		API:      API{ReadGroup: -1, ReadGroupName: "corral"},
		Metrics:  Metrics{Listen: "127.0.0.1:9100"},
		Modules:  []string{"veth", "bridge", "nf_tables"},
		Boot:     Boot{Root: "/dev/vda", FSType: "ext4", Options: "ro,noatime", Timeout: 10 * time.Second},
		Storage:  Storage{Data: "LABEL=data", FSType: "ext4", Var: true},
		Watchdog: Watchdog{Timeout: 15 * time.Second, BootLimit: 3},
		Userns:   Userns{FirstID: 100000, Size: 65536, Slots: 1024},
	}
	if !reflect.DeepEqual(cfg.Global, wantGlobal) {
		t.Errorf("Global\n got %+v\nwant %+v", cfg.Global, wantGlobal)
	}

	full := wantDefault(dir, "full", "/usr/bin/full", "--name", "a b", "c d", "e f")
	full.Description = "every key set"
	full.Requires = []string{"minimal"}
	full.After = []string{"host-net", "minimal"}
	full.Restart = RestartAlways
	full.RestartDelay = time.Second
	full.RestartDelayMax = time.Minute
	full.StableAfter = 30 * time.Second
	full.StartLimitBurst = 3
	full.StartLimitInterval = 5 * time.Minute
	full.PermanentExitCodes = []int{0, 125, 255}
	full.StopSignal = unix.SIGINT
	full.StopTimeout = 90 * time.Second
	full.Notify = true
	full.StartTimeout = 45 * time.Second
	full.NotifyAccess = NotifyAll
	full.Watchdog = 5 * time.Second
	full.WatchdogSignal = unix.SIGQUIT
	full.ReloadSignal = unix.SIGUSR1
	full.Reload = []string{"/usr/bin/full", "--reload"}
	full.Critical, full.SafeMode = true, true
	full.Container = container.Spec{
		Security: container.Security{
			NoNewPrivs: true, Seccomp: true,
			Caps:    append(append([]string(nil), container.DefaultCaps...), "CAP_NET_RAW"),
			Ambient: []string{"CAP_NET_RAW"}, OOMScoreAdj: 100, CPUs: []int{0},
			Devices: []string{"/dev/ttyAMA0"},
			Rlimits: []container.Rlimit{{Name: "core", Resource: 4, Cur: 0, Max: 0}, {Name: "nofile", Resource: 7, Cur: 1024, Max: 4096}},
		},
		Name:     "full",
		Args:     full.Container.Args,
		Env:      []string{"ALPHA=first", "PATH=/opt/bin", "ZED=last"},
		Dir:      "/var/lib/full",
		User:     "1000",
		Group:    "staff",
		Hostname: "full.local",
		Rootfs:   "/srv/rootfs",
		Mounts: []container.Mount{
			{Type: container.MountBind, Source: "/data/full", Target: "/var/lib/full", ReadOnly: true},
			{Type: container.MountBind, Source: "/etc/ssl", Target: "/etc/ssl"},
			{Type: container.MountTmpfs, Target: "/var/cache/full", Size: 16 << 20},
			{Type: container.MountTmpfs, Target: "/scratch", ReadOnly: true},
		},
		Init:   true,
		Limits: container.Limits{MemoryMax: 1 << 30, CPU: 2, PidsMax: 100},
	}
	full.Net.Address = netip.MustParseAddr("192.168.7.2")
	full.Net.Ports = []cnet.Port{{Host: 8080, Container: 80, Proto: cnet.TCP}, {Host: 5353, Container: 53, Proto: cnet.UDP}, {Host: 8443, Container: 443, Proto: cnet.TCP}}
	full.Net.AllowFrom = []string{"zz-auto"}

	hostNet := wantDefault(dir, "host-net", "/usr/sbin/sshd", "-D", "-e")
	hostNet.StopSignal = unix.SIGHUP
	hostNet.PermanentExitCodes = nil
	hostNet.Net.Mode = cnet.ModeHost
	hostNet.Container.HostNetwork = true

	minimal := wantDefault(dir, "minimal", "/bin/sleep", "1000")
	// "auto" addresses come from the name: minimal and zz-auto share the
	// home slot 3 of the 13 (.2 to .14); minimal, first by name, gets it,
	// zz-auto the next free address (see TestAutoAddresses).
	minimal.Net.Address = netip.MustParseAddr("192.168.7.5")

	none := wantDefault(dir, "none", "/bin/true")
	none.Restart = RestartNever
	none.Container.User = "nobody"
	none.Container.Group = "65534"
	none.Net.Mode = cnet.ModeNone

	zzAuto := wantDefault(dir, "zz-auto", "/bin/cat")
	zzAuto.Container.Limits = container.Limits{MemoryMax: MinMemory, CPU: 0.25}
	zzAuto.Net.Address = netip.MustParseAddr("192.168.7.6")
	zzAuto.Net.Isolated = true

	want := []*Service{full, hostNet, minimal, none, zzAuto}
	if len(cfg.Services) != len(want) {
		t.Fatalf("got %d services, want %d", len(cfg.Services), len(want))
	}
	for i, got := range cfg.Services {
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("service %s\n got %+v\nwant %+v", want[i].Name, *got, *want[i])
		}
	}
	if got := cfg.Service("minimal"); got != cfg.Services[2] {
		t.Errorf("Service(minimal) = %v", got)
	}
	if got := cfg.Service("nope"); got != nil {
		t.Errorf("Service(nope) = %v, want nil", got)
	}
}

// TestLoadBad loads every directory in testdata/bad and compares what
// `corral check` would print with its want.txt. Run with -update to
// rewrite the want files, then review the diff.
func TestLoadBad(t *testing.T) {
	dirs, err := filepath.Glob("testdata/bad/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no testdata/bad: %v", err)
	}
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			// Load "." so files are named services/x.toml, as `corral check`
			// run in the directory would show them.
			t.Chdir(abs)
			cfg, err := Load(".")
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if cfg.Report(&got) {
				t.Error("Report says ok, want problems")
			}
			if *update {
				if err := os.WriteFile("want.txt", got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile("want.txt")
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != string(want) {
				t.Errorf("report\n--- got\n%s--- want\n%s", &got, want)
			}
			// Problems are in file order, then line order.
			for i := 1; i < len(cfg.Problems); i++ {
				a, b := cfg.Problems[i-1], cfg.Problems[i]
				if a.File > b.File || a.File == b.File && a.Line > b.Line {
					t.Errorf("problems out of order: %v before %v", a, b)
				}
			}
			// A service file named ok.toml must load whatever else is broken.
			if _, err := os.Stat("services/ok.toml"); err == nil && cfg.Service("ok") == nil {
				t.Error("service ok did not load")
			}
		})
	}
}

// TestBadFileDoesNotStopOthers puts every bad service file of testdata/bad
// into one directory, beside one good file.
func TestBadFileDoesNotStopOthers(t *testing.T) {
	sdir := filepath.Join(t.TempDir(), "services")
	if err := os.Mkdir(sdir, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/bad/*/services/*.toml")
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// bad-name/services/Web.toml becomes bad-name-Web.toml: still bad.
		name := filepath.Base(filepath.Dir(filepath.Dir(f))) + "-" + filepath.Base(f)
		if err := os.WriteFile(filepath.Join(sdir, name), text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sdir, "good.toml"), []byte(`exec = ["/bin/true"]`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(filepath.Dir(sdir))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Service("good") == nil {
		var b bytes.Buffer
		cfg.Report(&b)
		t.Fatalf("good did not load beside %d bad files:\n%s", len(files), &b)
	}
	if len(cfg.Problems) < len(files)/2 {
		t.Errorf("only %d problems in %d files", len(cfg.Problems), len(files))
	}
}

func TestExamplesLoad(t *testing.T) {
	const dir = "../../etc-examples"
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var report bytes.Buffer
	if !cfg.Report(&report) {
		t.Errorf("etc-examples has problems:\n%s", &report)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "services", "*.toml"))
	if len(cfg.Services) != len(files) || len(files) == 0 {
		t.Errorf("%d services for %d files", len(cfg.Services), len(files))
	}
	// The demo depends on these.
	if web := cfg.Service("web"); web == nil || web.Net.Address != netip.MustParseAddr("10.88.0.10") || !web.Container.Init {
		t.Errorf("web = %+v", web)
	}
	if hello := cfg.Service("hello"); hello == nil || !hello.Notify || hello.Container.Args[0] != "/usr/libexec/corral/hello" {
		t.Errorf("hello = %+v", hello)
	}
	if flaky := cfg.Service("flaky"); flaky == nil || len(flaky.Container.Args) != 4 || flaky.StartLimitBurst != 5 {
		t.Errorf("flaky = %+v", flaky)
	}
	if cfg.Global.Hostname != "corral-demo" {
		t.Errorf("hostname = %q", cfg.Global.Hostname)
	}
}

func TestLoadDirectories(t *testing.T) {
	t.Run("missing dir is an error", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("empty services dir is all defaults", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "services"), 0o755)
		cfg, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		want := &Config{Dir: dir, Global: defaultGlobal(filepath.Join(dir, "corral.toml"))}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("got %+v\nwant %+v", cfg, want)
		}
		var b bytes.Buffer
		if !cfg.Report(&b) || b.String() != "0 services ok, 0 disabled, 0 problems\n" {
			t.Errorf("report = %q", &b)
		}
	})
	t.Run("no services dir is a problem: likely the wrong directory", func(t *testing.T) {
		dir := t.TempDir()
		cfg, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if cfg.Report(&b) || !strings.Contains(b.String(), "services: no such directory") {
			t.Errorf("report = %q", &b)
		}
	})
	t.Run("services is a file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "services"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil {
			t.Error("no error")
		}
	})
}

func TestDefaultGlobal(t *testing.T) {
	want := Global{
		File:     "x",
		Hostname: "corral",
		Network:  cnet.BridgeConfig{Name: "corral0", Subnet: netip.MustParsePrefix("10.88.0.0/24")},
		Log:      LogConfig{Level: "info", Format: "auto", FileSize: 1 << 20, Keep: 3, TotalSize: 64 << 20, Rate: 1000, Burst: 5000},
		API:      API{ReadGroup: -1},
		Boot:     Boot{FSType: "ext4", Options: "ro", Timeout: 10 * time.Second},
		Storage:  Storage{FSType: "ext4"},
		Watchdog: Watchdog{Timeout: 15 * time.Second, BootLimit: 3},
		Userns:   Userns{FirstID: 100000, Size: 65536, Slots: 1024},
	}
	if got := defaultGlobal("x"); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestRestartString(t *testing.T) {
	for r, want := range map[Restart]string{RestartOnFailure: "on-failure", RestartAlways: "always", RestartNever: "never", 9: "unknown"} {
		if got := r.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", r, got, want)
		}
	}
	var zero Restart
	if zero != RestartOnFailure {
		t.Error("the zero Restart is not RestartOnFailure")
	}
}

func TestUsernsIDsAreStablePerName(t *testing.T) {
	write := func(dir string, names ...string) {
		os.MkdirAll(filepath.Join(dir, "services"), 0o755)
		for _, n := range names {
			os.WriteFile(filepath.Join(dir, "services", n+".toml"), []byte("exec = [\"/bin/x\"]\n[container]\nuser_namespace = true\n"), 0o644)
		}
	}
	a, b := t.TempDir(), t.TempDir()
	write(a, "web", "db")
	write(b, "web", "db", "aaa", "zzz", "metrics")
	ca, _ := Load(a)
	cb, _ := Load(b)
	for _, n := range []string{"web", "db"} {
		ia, ib := ca.Service(n).Container.UserNS, cb.Service(n).Container.UserNS
		if ia == nil || ib == nil || *ia != *ib {
			t.Errorf("%s: ids %+v then %+v: adding services moved them", n, ia, ib)
		}
		if ia != nil && (ia.Size != 65536 || ia.HostID < 100000 || (ia.HostID-100000)%65536 != 0) {
			t.Errorf("%s: block %+v not aligned in the pool", n, ia)
		}
	}
	seen := map[uint32]string{}
	for _, s := range cb.Services {
		if prev, dup := seen[s.Container.UserNS.HostID]; dup {
			t.Errorf("%s and %s share ids", prev, s.Name)
		}
		seen[s.Container.UserNS.HostID] = s.Name
	}
}
