package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/config"
)

func TestPetDecision(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	lastPet := now.Add(-5 * time.Second)
	crit := map[string]bool{"db": true}
	up := func(name string, since time.Time) supervisor.Snapshot {
		return supervisor.Snapshot{Name: name, State: supervisor.Running, Since: since}
	}
	tests := []struct {
		name    string
		alive   error
		snaps   []supervisor.Snapshot
		booting bool
		want    bool
		why     string
	}{
		{"healthy", nil, []supervisor.Snapshot{up("db", now.Add(-time.Hour))}, false, true, ""},
		{"pid 1 stuck", errors.New("db does not answer"), []supervisor.Snapshot{up("db", now.Add(-time.Hour))}, false, false, "PID 1 is not healthy"},
		{"critical down", nil, []supervisor.Snapshot{{Name: "db", State: supervisor.Backoff}}, false, false, "critical service db is backoff"},
		{"critical restarted since the last pet", nil, []supervisor.Snapshot{up("db", now.Add(-time.Second))}, false, false, "was not up since the last pet"},
		{"a non-critical service may fail", nil, []supervisor.Snapshot{up("db", now.Add(-time.Hour)), {Name: "web", State: supervisor.Failed}}, false, true, ""},
		{"boot grace", nil, []supervisor.Snapshot{{Name: "db", State: supervisor.Starting}}, true, true, ""},
		{"boot grace needs PID 1 alive", errors.New("stuck"), nil, true, false, "PID 1 is not healthy"},
	}
	for _, tt := range tests {
		ok, why := petDecision(tt.alive, tt.snaps, crit, lastPet, tt.booting)
		if ok != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("%s: got %v %q, want %v %q", tt.name, ok, why, tt.want, tt.why)
		}
	}
	if allCriticalUp([]supervisor.Snapshot{{Name: "db", State: supervisor.Starting}}, crit) {
		t.Error("db starting counts as up")
	}
}

// svcAt is a critical service's snapshot: state, and its transitions
// (from, to, at) oldest first.
func svcAt(state supervisor.State, trans ...any) supervisor.Snapshot {
	s := supervisor.Snapshot{Name: "db", State: state}
	for i := 0; i+2 < len(trans); i += 3 {
		at := trans[i+2].(time.Time)
		s.History = append(s.History, supervisor.TransitionRecord{Time: at, From: trans[i].(string), To: trans[i+1].(string)})
		s.Since = at
	}
	return s
}

func TestPetter(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	starting := svcAt(supervisor.Starting, "stopped", "starting", at(0.1))
	up := svcAt(supervisor.Running, "stopped", "starting", at(0.1), "starting", "running", at(1.5))
	restarted := svcAt(supervisor.Running, "stopped", "starting", at(0.1), "starting", "running", at(1.5),
		"running", "stopping", at(4.2), "stopping", "backoff", at(4.3), "backoff", "starting", at(4.4), "starting", "running", at(4.6))
	reloaded := svcAt(supervisor.Running, "stopped", "starting", at(0.1), "starting", "running", at(1.5),
		"running", "reloading", at(4.2), "reloading", "running", at(4.6))
	backoff := svcAt(supervisor.Backoff, "stopped", "starting", at(0.1), "starting", "running", at(1.5), "running", "backoff", at(4.2))

	type tick struct {
		at    float64
		snap  supervisor.Snapshot
		alive error
		pet   bool
		why   string
	}
	tests := []struct {
		name  string
		grace time.Duration
		ticks []tick
	}{
		{"a healthy boot is petted on, past the boot", time.Minute, []tick{
			{at: 0, snap: starting, pet: true},
			{at: 1, snap: starting, pet: true},
			// up at 1.5, after the last pet: that ends the boot, and is
			// no restart
			{at: 2, snap: up, pet: true},
			{at: 3, snap: up, pet: true},
			{at: 4, snap: up, pet: true},
			{at: 5, snap: up, pet: true},
		}},
		{"a restart after the boot stops the petting for good", time.Minute, []tick{
			{at: 1, snap: starting, pet: true},
			{at: 2, snap: up, pet: true},
			{at: 3, snap: up, pet: true},
			{at: 4, snap: up, pet: true},
			{at: 5, snap: restarted, why: "was not up since the last pet"},
			{at: 6, snap: restarted, why: "was not up since the last pet"},
			{at: 7, snap: restarted, why: "was not up since the last pet"},
		}},
		{"a critical service down", time.Minute, []tick{
			{at: 2, snap: up, pet: true},
			{at: 3, snap: up, pet: true},
			{at: 5, snap: backoff, why: "critical service db is backoff"},
		}},
		{"a reload is no restart", time.Minute, []tick{
			{at: 2, snap: up, pet: true},
			{at: 4, snap: up, pet: true},
			{at: 5, snap: reloaded, pet: true},
			{at: 6, snap: reloaded, pet: true},
		}},
		{"PID 1 not answering", time.Minute, []tick{
			{at: 2, snap: up, pet: true},
			{at: 3, snap: up, alive: errors.New("db does not answer"), why: "PID 1 is not healthy"},
			{at: 4, snap: up, pet: true},
		}},
		{"the boot grace runs out", 3 * time.Second, []tick{
			{at: 1, snap: starting, pet: true},
			{at: 2, snap: starting, pet: true},
			{at: 3.5, snap: starting, pet: true}, // the last pet of the grace
			{at: 4.5, snap: starting, why: "critical service db is starting"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPetter(map[string]bool{"db": true}, 3*time.Second, time.Second, tt.grace, t0)
			for _, tk := range tt.ticks {
				seen := at(tk.at)
				ok, why := p.decide(seen, tk.alive, []supervisor.Snapshot{tk.snap}, false)
				if ok != tk.pet || !strings.Contains(why, tk.why) || (tk.why == "" && why != "") {
					t.Fatalf("tick at %.1fs: got pet=%v %q, want pet=%v %q", tk.at, ok, why, tk.pet, tk.why)
				}
				if ok {
					p.petted(seen, seen.Add(10*time.Millisecond))
				}
			}
		})
	}
}

func TestPetterShutdown(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := newPetter(map[string]bool{"db": true}, 3*time.Second, time.Second, time.Minute, t0)
	stopping := supervisor.Snapshot{Name: "db", State: supervisor.Stopping, Since: t0.Add(2 * time.Second)}
	if ok, why := p.decide(t0.Add(3*time.Second), nil, []supervisor.Snapshot{stopping}, true); !ok {
		t.Errorf("a critical service stopping on purpose: not petted: %s", why)
	}
	if ok, _ := p.decide(t0.Add(3*time.Second), errors.New("stuck"), []supervisor.Snapshot{stopping}, true); ok {
		t.Error("petted while PID 1 does not answer, shutting down")
	}
}

func TestPetterBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	p := newPetter(nil, 3*time.Second, time.Second, time.Minute, t0)
	for _, tt := range []struct {
		at      time.Duration
		budget  time.Duration
		resetIn time.Duration
	}{
		{0, 2500 * time.Millisecond, 3 * time.Second}, // armed: the actors may be busy starting services
		{time.Second, 1500 * time.Millisecond, 2 * time.Second},
		{2800 * time.Millisecond, 500 * time.Millisecond, 200 * time.Millisecond}, // never less than half an interval
		{4 * time.Second, 500 * time.Millisecond, 0},
	} {
		if got := p.pingBudget(t0.Add(tt.at)); got != tt.budget {
			t.Errorf("ping budget %s after the last pet: got %s, want %s", tt.at, got, tt.budget)
		}
		if got := p.resetIn(t0.Add(tt.at)); got != tt.resetIn {
			t.Errorf("reset %s after the last pet: got %s, want %s", tt.at, got, tt.resetIn)
		}
	}
}

func TestUpSince(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name string
		snap supervisor.Snapshot
		want time.Time
	}{
		{"started once", svcAt(supervisor.Running, "stopped", "starting", at(1), "starting", "running", at(2)), at(2)},
		{"reloaded twice", svcAt(supervisor.Running, "starting", "running", at(2), "running", "reloading", at(3),
			"reloading", "running", at(4), "running", "reloading", at(5), "reloading", "running", at(6)), at(2)},
		{"reloading now", svcAt(supervisor.Reloading, "starting", "running", at(2), "running", "reloading", at(3)), at(2)},
		{"restarted", svcAt(supervisor.Running, "starting", "running", at(2), "running", "backoff", at(3),
			"backoff", "starting", at(4), "starting", "running", at(5)), at(5)},
		{"history rolled over the start: its oldest entry", svcAt(supervisor.Running, "running", "reloading", at(3), "reloading", "running", at(4)), at(3)},
		{"no history", supervisor.Snapshot{State: supervisor.Running, Since: at(7)}, at(7)},
	}
	for _, tt := range tests {
		if got := upSince(tt.snap); !got.Equal(tt.want) {
			t.Errorf("%s: got %s, want %s", tt.name, got.Format("15:04:05"), tt.want.Format("15:04:05"))
		}
	}
}

func TestWatchdogSysfs(t *testing.T) {
	class := t.TempDir()
	for name, dev := range map[string]string{"watchdog0": "249:0\n", "watchdog1": "249:1\n"} {
		if err := os.MkdirAll(filepath.Join(class, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(class, name, "dev"), []byte(dev), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(class, "watchdog1", "state"), []byte("inactive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		major, minor uint32
		want         string
		ok           bool
	}{
		{"the legacy /dev/watchdog is watchdog0", 10, 130, "watchdog0", true},
		{"/dev/watchdog1", 249, 1, "watchdog1", true},
		{"not a watchdog", 1, 3, "", false},
	}
	for _, tt := range tests {
		got, ok := watchdogSysfs(class, tt.major, tt.minor)
		if ok != tt.ok || (ok && got != filepath.Join(class, tt.want)) {
			t.Errorf("%s: got %q %v, want %s %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if got := sysfsAttr(filepath.Join(class, "watchdog1"), "state"); got != "inactive" {
		t.Errorf("state: got %q", got)
	}
	if got := sysfsAttr("", "state"); got != "" {
		t.Errorf("state of no directory: got %q", got)
	}
	if _, ok := watchdogSysfs(t.TempDir(), 10, 130); ok {
		t.Error("found watchdog0 in an empty class directory")
	}
}

func TestBootGood(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	up := svcAt(supervisor.Running, "stopped", "starting", at(0), "starting", "running", at(1))
	crashed := svcAt(supervisor.Running, "stopped", "starting", at(0), "starting", "running", at(1),
		"running", "backoff", at(1.2), "backoff", "starting", at(1.3), "starting", "running", at(2))
	failed := svcAt(supervisor.Failed, "stopped", "starting", at(0), "starting", "running", at(1), "running", "failed", at(1.1))
	other := supervisor.Snapshot{Name: "web", State: supervisor.Failed}
	stable := map[string]time.Duration{"db": 10 * time.Second}
	tests := []struct {
		name string
		snap supervisor.Snapshot
		now  float64
		ok   bool
		wait time.Duration
	}{
		{"up, not for long enough", up, 5, false, 6 * time.Second},
		{"up for its stable_after", up, 11, true, 0},
		{"crashed right after its exec: the window starts again", crashed, 11, false, time.Second},
		{"failed: wait for a change", failed, 30, false, 0},
	}
	for _, tt := range tests {
		ok, wait := bootGood([]supervisor.Snapshot{tt.snap, other}, stable, at(tt.now))
		if ok != tt.ok || wait != tt.wait {
			t.Errorf("%s: got %v %s, want %v %s", tt.name, ok, wait, tt.ok, tt.wait)
		}
	}
	if ok, _ := bootGood([]supervisor.Snapshot{other}, nil, t0); !ok {
		t.Error("no critical service: the boot is not good")
	}
	if criticalState([]supervisor.Snapshot{up, other}, stable) == criticalState([]supervisor.Snapshot{crashed, other}, stable) {
		t.Error("a restart does not change the critical state")
	}
	if criticalState([]supervisor.Snapshot{up, other}, stable) != criticalState([]supervisor.Snapshot{up, {Name: "web", State: supervisor.Running}}, stable) {
		t.Error("a non-critical service changes the critical state")
	}
}

func TestPlanBoot(t *testing.T) {
	services := []*config.Service{
		{Name: "db", Critical: true},
		{Name: "agent", SafeMode: true},
		{Name: "ssh", SafeMode: true, Critical: true},
		{Name: "web"},
	}
	tests := []struct {
		name          string
		failed, limit int
		safe          bool
		held, kept    []string
		critical      []string
	}{
		{"a first boot", 0, 3, false, nil, nil, []string{"db", "ssh"}},
		{"below the limit", 2, 3, false, nil, nil, []string{"db", "ssh"}},
		{"at the limit: safe mode", 3, 3, true, []string{"db", "web"}, []string{"agent", "ssh"}, []string{"ssh"}},
		{"no limit", 9, 0, false, nil, nil, []string{"db", "ssh"}},
	}
	for _, tt := range tests {
		p := planBoot(services, tt.failed, tt.limit)
		var held, critical []string
		for n := range p.held {
			held = append(held, n)
		}
		for n := range p.critical {
			critical = append(critical, n)
		}
		slices.Sort(held)
		slices.Sort(critical)
		if p.safe != tt.safe || !slices.Equal(held, tt.held) || !slices.Equal(p.kept, tt.kept) || !slices.Equal(critical, tt.critical) {
			t.Errorf("%s: got safe=%v held=%v kept=%v critical=%v, want %v %v %v %v",
				tt.name, p.safe, held, p.kept, critical, tt.safe, tt.held, tt.kept, tt.critical)
		}
		if p.safe && !strings.Contains(p.held["db"], "safe mode: 3 boots in a row") {
			t.Errorf("%s: held because %q", tt.name, p.held["db"])
		}
	}
}
