package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		json  bool
		ktime float64
		msg   string
	}{
		{name: "kernel", text: "[    1.498123] Run /init as init process\r\n", ktime: 1.498123},
		{name: "corral", text: `{"level":"info","mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}` + "\r\n", json: true, ktime: -1, msg: "corral v1 starting (machine mode)"},
		{name: "kernel line cut into a JSON line", text: `[    4.5] corral0: port 1 entered blocking state{"level":"info","svc":"web","message":"x"}`, json: true, ktime: 4.5, msg: "x"},
		{name: "broken JSON", text: `{"level":"info","svc":"we`, ktime: -1},
		{name: "busybox", text: "SELFTEST: run init.test", ktime: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := parseLine(time.Second, tt.text)
			if (l.JSON != nil) != tt.json || l.KTime != tt.ktime || l.str("message") != tt.msg {
				t.Errorf("got json=%v ktime=%v msg=%q, want json=%v ktime=%v msg=%q", l.JSON != nil, l.KTime, l.str("message"), tt.json, tt.ktime, tt.msg)
			}
			if strings.ContainsAny(l.Text, "\r\n") {
				t.Errorf("line end kept: %q", l.Text)
			}
		})
	}
}

// logOf turns text lines into console lines 100 ms apart.
func logOf(lines ...string) []Line {
	out := make([]Line, len(lines))
	for i, s := range lines {
		out[i] = parseLine(time.Duration(i+1)*100*time.Millisecond, s)
	}
	return out
}

func TestMatchers(t *testing.T) {
	l := parseLine(0, `{"mode":"machine","pid":1,"output":true,"controllers":["cpuset","cpu","memory","pids"],"message":"cgroups v2"}`)
	for _, tt := range []struct {
		m    matcher
		want bool
	}{
		{eq("pid", 1), true},
		{eq("pid", 2), false},
		{eq("output", true), true},
		{eq("mode", "machine"), true},
		{eq("nosuch", ""), false},
		{has("message", "groups"), true},
		{has("pid", "1"), false}, // not a string
		{includes("controllers", "memory", "cpu", "pids"), true},
		{includes("controllers", "io"), false},
		{includes("message", "x"), false},
		{present("mode"), true},
		{present("file"), false},
	} {
		v, ok := l.JSON[tt.m.key]
		if got := tt.m.ok(v, ok); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.m.desc, got, tt.want)
		}
	}
}

func TestEvaluateOrderAndAfter(t *testing.T) {
	lines := logOf(
		`{"message":"bye"}`,
		`[    9.1] reboot: Power down`,
		`{"message":"shutting down"}`,
		`{"message":"bye"}`,
	)
	ms := []marker{
		{Name: "power down too early", After: "shutdown", Plain: "reboot: Power down"},
		{Name: "shutdown", JSON: []matcher{eq("message", "shutting down")}},
		{Name: "bye", After: "shutdown", JSON: []matcher{eq("message", "bye")}},
		{Name: "power down", After: "bye", Plain: "reboot: Power down"},
		{Name: "only on raspi3b", On: []string{"raspi3b"}, Plain: "nothing"},
	}
	res := evaluate(ms, lines, "virt")
	if len(res) != 4 {
		t.Fatalf("%d results, want 4 (the raspi3b row does not apply)", len(res))
	}
	want := []struct {
		ok   bool
		line int
	}{{false, -1}, {true, 2}, {true, 3}, {false, -1}}
	for i, w := range want {
		if res[i].OK != w.ok || res[i].Line != w.line {
			t.Errorf("%s: ok=%v line=%d (%s), want ok=%v line=%d", res[i].Marker.Name, res[i].OK, res[i].Line, res[i].Err, w.ok, w.line)
		}
	}
	if !strings.Contains(res[0].Err, `needs "shutdown" first`) {
		t.Errorf("err = %q", res[0].Err)
	}
	if res[2].At != 400*time.Millisecond {
		t.Errorf("bye at %v, want 400ms", res[2].At)
	}
}

func TestForkedFewer(t *testing.T) {
	check := forkedFewer(32)
	for msg, wantErr := range map[string]bool{
		"payload: forked 14 children, then: resource temporarily unavailable": false,
		"payload: forked 32 children, then: x":                                true,
		"payload: forked many":                                                true,
	} {
		l := parseLine(0, fmt.Sprintf(`{"svc":"forkbomb","output":true,"message":%q}`, msg))
		if _, err := check(l); (err != nil) != wantErr {
			t.Errorf("%q: err = %v, want error %v", msg, err, wantErr)
		}
	}
}

func tr(svc, from, to string) string {
	return fmt.Sprintf(`{"svc":%q,"from":%q,"to":%q,"event":"x","message":"%s: x"}`, svc, from, to, to)
}

func TestAllStopped(t *testing.T) {
	base := []string{
		tr("hello", "starting", "running"),
		tr("web", "starting", "running"),
		tr("flaky", "running", "backoff"),
		tr("check", "running", "done"),
		`{"message":"shutting down: stopping services in reverse dependency order"}`,
		tr("web", "running", "stopping"),
	}
	ok := logOf(append(base, tr("web", "stopping", "stopped"), tr("hello", "running", "stopped"))...)
	if i, detail, err := allStopped(ok, 5); err != nil || i != 7 || detail != "hello web" {
		t.Errorf("got %d %q %v, want 7 \"hello web\" nil", i, detail, err)
	}
	bad := logOf(base...)
	_, _, err := allStopped(bad, 5)
	if err == nil || !strings.Contains(err.Error(), "hello (no transition)") || !strings.Contains(err.Error(), "web (stopping)") {
		t.Errorf("err = %v", err)
	}
}

func TestReachedTwice(t *testing.T) {
	lines := logOf(tr("hello", "starting", "running"), tr("hello", "running", "starting"), tr("web", "starting", "running"))
	if _, _, err := reachedTwice("hello", "running")(lines, 0); err == nil {
		t.Error("once counted as twice")
	}
	lines = append(lines, logOf(tr("hello", "starting", "running"))...)
	if i, _, err := reachedTwice("hello", "running")(lines, 0); err != nil || i != 3 {
		t.Errorf("got %d %v", i, err)
	}
}

func TestNoSkips(t *testing.T) {
	lines := logOf(
		"=== RUN   TestExtSuperblock",
		"    storage_test.go:29: no mkfs.ext4",
		"--- SKIP: TestExtSuperblock (0.00s)",
		"--- PASS: TestX (1.00s)",
	)
	if _, detail, err := noSkips(lines, 0); err != nil || !strings.Contains(detail, "TestExtSuperblock (no mkfs.ext4)") {
		t.Errorf("allowed skip: %q %v", detail, err)
	}
	// Parallel tests: the message follows the test's "=== CONT" header,
	// its "--- SKIP" comes after other tests' lines.
	par := logOf(
		"=== CONT  TestLibsystemd",
		"    notify_integration_test.go:94: no C compiler",
		"=== CONT  TestOther",
		"    other_test.go:1: some other message",
		"--- PASS: TestOther (1.00s)",
		"--- SKIP: TestLibsystemd (0.01s)",
	)
	if _, detail, err := noSkips(par, 0); err != nil || !strings.Contains(detail, "TestLibsystemd (no C compiler)") {
		t.Errorf("parallel skip: %q %v", detail, err)
	}
	for _, extra := range [][]string{
		{"        cgroup_test.go:12: memory controller missing", "    --- SKIP: TestCgroupV2/memory (0.00s)"},
		{"--- SKIP: TestNoReason (0.00s)"},
	} {
		more := append(append([]Line{}, lines...), logOf(extra...)...)
		if _, _, err := noSkips(more, 0); err == nil {
			t.Errorf("%q: accepted", extra)
		}
	}
}

// goodBoot is what a passing virt boot prints, in short.
func goodBoot() []string {
	return []string{
		"[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]",
		"[    1.400000] Run /init as init process",
		`{"level":"info","version":"v1","mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}`,
		`{"level":"error","file":"/etc/corral/services/broken.toml","line":8,"key":"restrat","message":"unknown key"}`,
		`{"level":"info","modules":["veth","llc","stp","bridge","nfnetlink","nf_tables","nf_nat","nft_nat"],"message":"loaded kernel modules"}`,
		`{"level":"info","version":"v2","controllers":["cpu","io","memory","pids"],"message":"cgroups v2"}`,
		`{"level":"info","bridge":"corral0","subnet":"10.88.0.0/24","mtu":1500,"table":"corral","message":"bridge up; no default route yet: services reach the outside once there is one (checked at each start)"}`,
		tr("hog", "starting", "running"),
		`{"level":"warn","svc":"hog","from":"running","to":"backoff","event":"exited","message":"backoff: oom-killed; restarting in 2s"}`,
		tr("flaky", "starting", "running"),
		tr("flaky", "running", "backoff"),
		tr("flaky", "backoff", "starting"),
		tr("flaky", "starting", "running"),
		tr("forkbomb", "starting", "running"),
		`{"svc":"forkbomb","output":true,"message":"payload: forked 14 children, then: resource temporarily unavailable"}`,
		`{"svc":"hello","from":"starting","to":"running","event":"ready","message":"running: READY=1"}`,
		tr("web", "starting", "running"),
		tr("check", "starting", "running"),
		`{"svc":"check","output":true,"message":"check: web page fetched across the bridge"}`,
		tr("check", "running", "done"),
		tr("qemu-check", "starting", "running"),
		`{"svc":"qemu-check","output":true,"message":"QEMU-CHECK: ok web through its port forward (10.88.0.1:8080) (after 0s more)"}`,
		`{"svc":"hello","from":"running","to":"starting","event":"exited","message":"starting: killed by SIGKILL"}`,
		`{"svc":"hello","from":"starting","to":"running","event":"ready","message":"running: READY=1"}`,
		`{"svc":"qemu-check","output":true,"message":"QEMU-CHECK: kill ok: hello restarts 0 -> 1"}`,
		`{"svc":"qemu-check","output":true,"message":"QEMU-CHECK: PASS"}`,
		`{"level":"info","action":"poweroff","message":"shutting down: stopping services in reverse dependency order"}`,
		tr("qemu-check", "running", "done"),
		tr("web", "running", "stopped"),
		tr("hello", "running", "stopped"),
		tr("flaky", "running", "stopped"),
		tr("forkbomb", "running", "stopped"),
		`{"level":"info","count":5,"read_only":0,"message":"unmounted filesystems"}`,
		`{"level":"info","action":"poweroff","message":"bye"}`,
		"[   11.800000] reboot: Power down",
	}
}

var testServices = []svcInfo{
	{Name: "check"}, {Name: "flaky"}, {Name: "forkbomb"}, {Name: "hello", Notify: true},
	{Name: "hog"}, {Name: "qemu-check"}, {Name: "web"},
}

func TestBootMarkersOnAGoodBoot(t *testing.T) {
	res := evaluate(bootMarkers(testServices), logOf(goodBoot()...), "virt")
	for _, r := range res {
		if !r.OK {
			t.Errorf("%s: %s", r.Marker.Name, r.Err)
		}
	}
	// raspi3b restarts instead.
	lines := goodBoot()
	lines[len(lines)-1] = "[   11.8] reboot: Restarting system"
	for _, r := range evaluate(bootMarkers(testServices), logOf(lines...), "raspi3b") {
		if !r.OK {
			t.Errorf("raspi3b: %s: %s", r.Marker.Name, r.Err)
		}
	}
}

func TestBootMarkersCatchFailures(t *testing.T) {
	drop := map[string]string{
		`"message":"cgroups v2"`:                        "cgroup v2 with the memory, cpu and pids controllers",
		"web page fetched":                              "check fetched web's page across the bridge",
		`"to":"backoff","event":"exi`:                   "hog was oom-killed under its memory limit",
		"unmounted filesystems":                         "file systems unmounted",
		`"svc":"hello","from":"running","to":"stopped"`: "every running service stopped",
		"reboot: Power down":                            "the kernel powered down",
	}
	for text, marker := range drop {
		var lines []string
		for _, l := range goodBoot() {
			if !strings.Contains(l, text) {
				lines = append(lines, l)
			}
		}
		var failed []string
		for _, r := range evaluate(bootMarkers(testServices), logOf(lines...), "virt") {
			if !r.OK {
				failed = append(failed, r.Marker.Name)
			}
		}
		if !contains(failed, marker) {
			t.Errorf("without %q: failed %q, want %q among them", text, failed, marker)
		}
	}
}

func TestSelftestMarkers(t *testing.T) {
	lines := logOf(
		"[    0.000000] Booting Linux on physical CPU 0x0",
		"[    1.5] Run /selftest as init process",
		"SELFTEST: cgroup2: controllers [cpuset cpu io memory hugetlb pids rdma misc], enabled [cpu io memory pids]",
		"SELFTEST: loaded 5 modules: bcm2835_wdt bridge llc stp veth",
		"--- PASS: TestBridge (1.00s)",
		"    storage_test.go:29: no mkfs.ext4",
		"--- SKIP: TestExtSuperblock (0.00s)",
		"SELFTEST PASS",
		"[   60.6] reboot: Power down",
	)
	for _, r := range evaluate(selftestMarkers(), lines, bootSelftest) {
		if !r.OK {
			t.Errorf("%s: %s", r.Marker.Name, r.Err)
		}
	}
	pass, fail, skip, _ := testSummary(lines)
	if pass != 1 || fail != 0 || skip != 1 {
		t.Errorf("summary %d/%d/%d", pass, fail, skip)
	}
}

// timed is a console line at a given host time.
type timed struct {
	at   float64
	text string
}

func timedLog(ls ...timed) []Line {
	out := make([]Line, len(ls))
	for i, l := range ls {
		out[i] = parseLine(time.Duration(l.at*float64(time.Second)), l.text)
	}
	return out
}

func TestWithinAndAtLeast(t *testing.T) {
	lines := timedLog(
		timed{1, `{"message":"wedged"}`},
		timed{2.5, `{"message":"not petting"}`},
		timed{6, "[    5.9] softdog: Initiating system reboot"},
	)
	for _, tt := range []struct {
		m  marker
		ok bool
	}{
		{marker{Name: "soon enough", After: "wedged", Within: 2 * time.Second, JSON: []matcher{eq("message", "not petting")}}, true},
		{marker{Name: "too late", After: "wedged", Within: time.Second, JSON: []matcher{eq("message", "not petting")}}, false},
		{marker{Name: "long enough", After: "wedged", AtLeast: 5 * time.Second, Plain: "softdog"}, true},
		{marker{Name: "too soon", After: "wedged", AtLeast: 6 * time.Second, Plain: "softdog"}, false},
	} {
		ms := []marker{{Name: "wedged", JSON: []matcher{eq("message", "wedged")}}, tt.m}
		r := evaluate(ms, lines, "x")[1]
		if r.OK != tt.ok || !strings.Contains(r.Detail, `after "wedged"`) {
			t.Errorf("%s: ok=%v detail=%q err=%q, want ok=%v", tt.m.Name, r.OK, r.Detail, r.Err, tt.ok)
		}
	}
}

func TestAnywhereAndNever(t *testing.T) {
	lines := logOf(
		`{"message":"a"}`,
		`[   10.0] softdog: Initiating system reboot{"level":"info","svc":"critical","output":true,"message":"x"}`,
		`{"message":"b"}`,
	)
	plain := marker{Plain: "softdog: Initiating system reboot"}
	anywhere := marker{Plain: plain.Plain, Anywhere: true}
	if plain.matches(lines[1]) || !anywhere.matches(lines[1]) {
		t.Errorf("a kernel line cut into a JSON line: plain matches %v, anywhere %v", plain.matches(lines[1]), anywhere.matches(lines[1]))
	}
	if i, _, err := never(anywhere)(lines, 0); err == nil || i != 1 {
		t.Errorf("never: got %d %v, want line 1 and an error", i, err)
	}
	if _, _, err := never(anywhere)(lines, 2); err != nil {
		t.Errorf("never, from after it: %v", err)
	}
	a, b := marker{JSON: []matcher{eq("message", "a")}}, marker{JSON: []matcher{eq("message", "b")}}
	if i, _, err := noneBefore(anywhere, b)(lines, 0); err == nil || i != 1 {
		t.Errorf("noneBefore: got %d %v, want line 1 and an error", i, err)
	}
	if i, _, err := noneBefore(b, anywhere)(lines, 0); err != nil || i != 1 {
		t.Errorf("noneBefore, the good order: got %d %v", i, err)
	}
	if _, _, err := noneBefore(b, a)(lines, 1); err == nil {
		t.Error("noneBefore: the end was never seen, but no error")
	}
}

const wdTimeout = 3 * time.Second

// healthyWatchdogBoot is what a passing watchdog-healthy boot prints, in
// short.
func healthyWatchdogBoot() []timed {
	return []timed{
		{0.4, "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]"},
		{1.8, "[    1.388000] Run /init as init process"},
		{2.0, `{"level":"info","version":"v1","mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}`},
		{2.05, "[    1.650000] softdog: initialized. soft_noboot=0 soft_margin=60 sec soft_panic=0 (nowayout=0)"},
		{2.07, `{"level":"info","modules":["softdog"],"message":"loaded kernel modules"}`},
		{3.9, `{"level":"info","device":"/dev/watchdog","identity":"Software Watchdog","timeout":3000,"interval":1000,"critical":["critical"],"message":"watchdog: armed"}`},
		{4.5, `{"level":"info","svc":"critical","from":"starting","to":"running","event":"ready","pid":87,"message":"running: READY=1"}`},
		{4.5, tr("watchdog-check", "starting", "running")},
		{14.6, `{"level":"info","critical":1,"message":"boot complete: every critical service is up and stayed up for its stable_after"}`},
		{16.9, `{"level":"info","svc":"watchdog-check","output":true,"message":"WATCHDOG-CHECK: PASS"}`},
		{16.98, `{"level":"info","action":"poweroff","message":"shutting down: stopping services in reverse dependency order"}`},
		{17.0, tr("watchdog-check", "stopping", "stopped")},
		{17.0, tr("critical", "stopping", "stopped")},
		{17.1, `{"level":"info","device":"/dev/watchdog","state":"inactive","message":"watchdog: disarmed (magic close)"}`},
		{17.1, `{"level":"info","action":"poweroff","message":"bye"}`},
		{17.1, "[   16.685000] reboot: Power down"},
	}
}

// wedgedWatchdogBoot is what a passing watchdog-wedged boot prints.
func wedgedWatchdogBoot() []timed {
	return []timed{
		{0.4, "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]"},
		{1.6, "[    1.285000] Run /init as init process"},
		{1.7, `{"level":"info","version":"v1","mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}`},
		{1.8, "[    1.500000] softdog: initialized. soft_noboot=0 soft_margin=60 sec soft_panic=0 (nowayout=0)"},
		{1.85, `{"level":"info","modules":["softdog"],"message":"loaded kernel modules"}`},
		{3.3, `{"level":"info","device":"/dev/watchdog","identity":"Software Watchdog","timeout":3000,"interval":1000,"critical":["critical"],"message":"watchdog: armed"}`},
		{3.7, `{"level":"info","svc":"critical","from":"starting","to":"running","event":"ready","pid":87,"message":"running: READY=1"}`},
		{8.2, `{"level":"info","svc":"critical","from":"running","to":"stopping","event":"watchdog","pid":87,"message":"stopping: watchdog timeout (no WATCHDOG=1 within 2s)"}`},
		{8.3, `{"level":"error","reset_in":1990,"message":"watchdog: not petting, the board resets in 1.99s unless this clears: critical service critical is stopping"}`},
		{8.7, tr("critical", "stopping", "backoff")},
		{10.3, "[   10.007000] softdog: Initiating system reboot"},
	}
}

func failedMarkers(ms []marker, lines []Line, boot string) []string {
	var failed []string
	for _, r := range evaluate(ms, lines, boot) {
		if !r.OK {
			failed = append(failed, r.Marker.Name+": "+r.Err)
		}
	}
	return failed
}

func TestWatchdogMarkersOnGoodBoots(t *testing.T) {
	for boot, log := range map[string][]timed{bootWatchdogHealthy: healthyWatchdogBoot(), bootWatchdogWedged: wedgedWatchdogBoot()} {
		if failed := failedMarkers(watchdogMarkers(wdTimeout), timedLog(log...), boot); len(failed) > 0 {
			t.Errorf("%s: failed:\n%s", boot, strings.Join(failed, "\n"))
		}
	}
}

func TestWatchdogMarkersCatchFailures(t *testing.T) {
	// edit changes a good boot's log; want names (a prefix of) a marker
	// that must fail then.
	tests := []struct {
		name string
		boot string
		edit func([]timed) []timed
		want []string
	}{
		{"the board reset after the boot (the grace bug)", bootWatchdogHealthy, func(l []timed) []timed {
			return append(l[:8:8],
				timed{5.5, `{"level":"error","message":"watchdog: not petting, the board resets in 2s unless this clears: critical service critical was not up since the last pet"}`},
				timed{7.5, "[    7.2] softdog: Initiating system reboot"})
		}, []string{"corral never stopped petting", "softdog never reset the board", "the kernel powered down", mkWDCheck}},
		{"powered off too soon", bootWatchdogHealthy, func(l []timed) []timed {
			for i := 8; i < len(l); i++ {
				l[i].at -= 8
			}
			return l
		}, []string{"the power-off came 12s"}},
		{"the magic close did not take", bootWatchdogHealthy, func(l []timed) []timed {
			l[13].text = strings.Replace(l[13].text, `"inactive"`, `"active"`, 1)
			return append(l[:14:14], append([]timed{{17.1, "[   16.6] watchdog: watchdog0: watchdog did not stop!"}}, l[14:]...)...)
		}, []string{"the power-off disarmed softdog", "the kernel did not refuse the magic close"}},
		{"softdog kept its own timeout", bootWatchdogHealthy, func(l []timed) []timed {
			l[5].text = strings.Replace(l[5].text, `"timeout":3000`, `"timeout":60000`, 1)
			return append(l[:5:5], append([]timed{{3.9, `{"level":"warn","error":"invalid argument","seconds":3,"message":"watchdog: set timeout; keeping the device's"}`}}, l[5:]...)...)
		}, []string{mkWDArmed, "softdog took the timeout"}},
		{"the boot counted as good at once (before a stable_after)", bootWatchdogHealthy, func(l []timed) []timed {
			l[8].at = 4.6
			return l
		}, []string{"the boot counted as good once"}},
		{"the reset came too late", bootWatchdogWedged, func(l []timed) []timed {
			l[10].at = 13.5
			return l
		}, []string{"softdog reset the board within 4s"}},
		{"no reset", bootWatchdogWedged, func(l []timed) []timed { return l[:10] }, []string{"softdog reset the board within 4s"}},
		{"petting stopped before the wedge", bootWatchdogWedged, func(l []timed) []timed {
			return append(l[:7:7], append([]timed{{5, `{"level":"error","message":"watchdog: not petting, the board resets in 2s unless this clears: x"}`}}, l[7:]...)...)
		}, []string{"corral petted until the wedge"}},
		{"corral noticed late", bootWatchdogWedged, func(l []timed) []timed {
			l[8].at, l[9].at = 11.5, 11.6
			return l
		}, []string{mkNotPetting}},
		{"the wedging boot counted as good", bootWatchdogWedged, func(l []timed) []timed {
			return append(l[:7:7], append([]timed{{3.8, `{"level":"info","critical":1,"message":"boot complete: every critical service is up"}`}}, l[7:]...)...)
		}, []string{"the boot never counted as good"}},
		{"powered off instead", bootWatchdogWedged, func(l []timed) []timed {
			return append(l[:8:8],
				timed{9, `{"level":"info","action":"poweroff","message":"shutting down: stopping services in reverse dependency order"}`},
				timed{9.5, "[    9.4] reboot: Power down"})
		}, []string{"nothing asked for a shutdown", "no power-off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := healthyWatchdogBoot()
			if tt.boot == bootWatchdogWedged {
				log = wedgedWatchdogBoot()
			}
			failed := failedMarkers(watchdogMarkers(wdTimeout), timedLog(tt.edit(log)...), tt.boot)
			for _, w := range tt.want {
				found := false
				for _, f := range failed {
					found = found || strings.HasPrefix(f, w)
				}
				if !found {
					t.Errorf("want %q to fail; failed:\n%s", w, strings.Join(failed, "\n"))
				}
			}
		})
	}
}

// bootloopRun is one failing run of the watchdog-bootloop boot, from t.
func bootloopRun(t float64, failed int) []timed {
	l := []timed{
		{t + 0.4, "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]"},
		{t + 2.0, `{"level":"info","version":"v1","mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}`},
		{t + 4.6, `{"level":"info","device":"/dev/vda","spec":"LABEL=data","message":"data partition mounted on /data"}`},
	}
	if failed > 0 {
		l = append(l, timed{t + 4.7, fmt.Sprintf(`{"level":"warn","failed_boots":%d,"boot_limit":2,"message":"failed-boot counter: the last %d boot(s) did not keep every critical service up"}`, failed, failed)})
	}
	return append(l,
		timed{t + 4.8, `{"level":"info","device":"/dev/watchdog","identity":"Software Watchdog","timeout":3000,"critical":["critical"],"message":"watchdog: armed"}`},
		timed{t + 5.2, tr("critical", "starting", "running")},
		timed{t + 7.3, `{"level":"error","svc":"critical","from":"running","to":"failed","event":"exited","exit_code":125,"message":"failed: exited 125"}`},
		timed{t + 8.0, `{"level":"error","reset_in":2000,"message":"watchdog: not petting, the board resets in 2s unless this clears: critical service critical is failed"}`},
		timed{t + 10.0, "[   9.6] softdog: Initiating system reboot"},
	)
}

// bootloopBoot is what a passing watchdog-bootloop boot prints.
func bootloopBoot() []timed {
	l := append(bootloopRun(0, 0)[:3:3], timed{4.65, `{"svc":"bootloop-check","output":true,"message":"BOOTLOOP-CHECK: failed-boot counter: 1 (a service may print this too)"}`})
	l = append(l, bootloopRun(0, 0)[3:]...)
	l = append(l, timed{10, runLine(2, bootloopRuns)})
	l = append(l, bootloopRun(10, 1)...)
	l = append(l, timed{20, runLine(3, bootloopRuns)})
	return append(l,
		timed{20.4, "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]"},
		timed{22.0, `{"level":"info","version":"v1","mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}`},
		timed{24.6, `{"level":"info","device":"/dev/vda","spec":"LABEL=data","message":"data partition mounted on /data"}`},
		timed{24.7, `{"level":"error","failed_boots":2,"starting":["bootloop-check"],"message":"SAFE MODE: safe mode: 2 boots in a row did not bring every critical service up"}`},
		timed{24.8, `{"level":"info","device":"/dev/watchdog","identity":"Software Watchdog","timeout":3000,"critical":[],"message":"watchdog: armed"}`},
		timed{24.9, `{"level":"info","critical":0,"safe_mode":true,"message":"boot complete (safe mode): the failed-boot count is reset"}`},
		timed{25.2, tr("bootloop-check", "starting", "running")},
		timed{26.3, `{"level":"info","svc":"bootloop-check","output":true,"message":"BOOTLOOP-CHECK: PASS: safe mode, the counter is reset to 0"}`},
		timed{26.4, `{"level":"info","action":"poweroff","message":"shutting down: stopping services in reverse dependency order"}`},
		timed{26.5, `{"level":"info","device":"/dev/watchdog","state":"inactive","message":"watchdog: disarmed (magic close)"}`},
		timed{26.5, `{"level":"info","action":"poweroff","message":"bye"}`},
		timed{26.5, "[    6.1] reboot: Power down"},
	)
}

func TestBootloopMarkers(t *testing.T) {
	if failed := failedMarkers(bootloopMarkers(wdTimeout), timedLog(bootloopBoot()...), bootWatchdogBootloop); len(failed) > 0 {
		t.Errorf("a good boot failed:\n%s", strings.Join(failed, "\n"))
	}
	edit := func(f func(string) string) []Line {
		var out []timed
		for _, l := range bootloopBoot() {
			if l.text = f(l.text); l.text != "" {
				out = append(out, l)
			}
		}
		return timedLog(out...)
	}
	tests := []struct {
		name  string
		lines []Line
		want  []string
	}{
		{"the counter never climbs (a crash after exec was a good boot)", edit(func(s string) string {
			if strings.Contains(s, "failed-boot counter") || strings.Contains(s, "SAFE MODE") || strings.Contains(s, "safe_mode") {
				return ""
			}
			return s
		}), []string{"run 2: 1 failed boot counted", "run 3: SAFE MODE", "run 3: the safe mode boot counted as good"}},
		{"safe mode waits for the held service", edit(func(s string) string {
			if strings.Contains(s, `"critical":[]`) {
				return strings.Replace(s, `"critical":[]`, `"critical":["critical"]`, 1)
			}
			if strings.Contains(s, "safe_mode") || strings.Contains(s, "BOOTLOOP-CHECK: PASS") {
				return ""
			}
			return s
		}), []string{"run 3: the watchdog does not wait", "run 3: the safe mode boot counted as good", "run 3: bootloop-check saw"}},
		{"no reset in run 1", edit(func(s string) string {
			if strings.Contains(s, "softdog: Initiating") && strings.Contains(s, "9.6]") {
				return ""
			}
			return s
		}), []string{"run 1: softdog reset the board"}},
	}
	for _, tt := range tests {
		failed := failedMarkers(bootloopMarkers(wdTimeout), tt.lines, bootWatchdogBootloop)
		for _, w := range tt.want {
			found := false
			for _, f := range failed {
				found = found || strings.HasPrefix(f, w)
			}
			if !found {
				t.Errorf("%s: want %q to fail; failed:\n%s", tt.name, w, strings.Join(failed, "\n"))
			}
		}
	}
}
