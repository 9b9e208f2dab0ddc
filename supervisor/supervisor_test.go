package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/supervisor/config"
	"github.com/corral-init/corral/supervisor/notify"
)

// fakeClock fires timers only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time on and fires what became due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// fakeRuntime is a function-backed Runtime: no processes, just a log of
// what the supervisor asked for and hooks the test can pull.
type fakeRuntime struct {
	mu    sync.Mutex
	log   []string
	insts map[string]*fakeInst
	fail  map[string]error
	pid   int
	// exitOnSignal makes instances exit when signalled (a well-behaved
	// service); otherwise they ignore signals until killed.
	exitOnSignal bool
}

type fakeInst struct {
	rt   *fakeRuntime
	name string
	pid  int
	h    Hooks
	once sync.Once
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{insts: map[string]*fakeInst{}, fail: map[string]error{}, exitOnSignal: true}
}

func (r *fakeRuntime) record(s string) {
	r.mu.Lock()
	r.log = append(r.log, s)
	r.mu.Unlock()
}

func (r *fakeRuntime) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func (r *fakeRuntime) Start(def *config.Service, h Hooks) (Instance, error) {
	r.mu.Lock()
	err := r.fail[def.Name]
	r.pid++
	i := &fakeInst{rt: r, name: def.Name, pid: r.pid, h: h}
	if err == nil {
		r.insts[def.Name] = i
	}
	r.mu.Unlock()
	r.record("start " + def.Name)
	if err != nil {
		return nil, err
	}
	return i, nil
}

func (r *fakeRuntime) inst(name string) *fakeInst {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.insts[name]
}

func (i *fakeInst) Pid() int { return i.pid }
func (i *fakeInst) Signal(sig unix.Signal) error {
	i.rt.record(fmt.Sprintf("signal %s %s", i.name, unix.SignalName(sig)))
	if i.rt.exitOnSignal {
		go i.exit(container.Exit{Code: 0})
	}
	return nil
}
func (i *fakeInst) Kill() error {
	i.rt.record("kill " + i.name)
	go i.exit(container.Exit{Code: -1, Signal: unix.SIGKILL})
	return nil
}
func (i *fakeInst) Cleanup()                    { i.rt.record("cleanup " + i.name) }
func (i *fakeInst) Reload() error               { i.rt.record("reload " + i.name); return nil }
func (i *fakeInst) Degraded() []string          { return nil }
func (i *fakeInst) CgroupPath() string          { return "" }
func (i *fakeInst) Memory() (int64, error)      { return 0, errors.New("none") }
func (i *fakeInst) CPU() (time.Duration, error) { return 0, errors.New("none") }
func (i *fakeInst) exit(e container.Exit)       { i.once.Do(func() { i.h.OnExit(e) }) }

func svc(name string, mod func(*config.Service)) *config.Service {
	s := &config.Service{
		Name: name, Restart: config.RestartOnFailure, RestartDelay: 100 * time.Millisecond,
		RestartDelayMax: time.Second, StableAfter: 10 * time.Second, StartLimitInterval: time.Minute,
		PermanentExitCodes: []int{125}, StopSignal: unix.SIGTERM, StopTimeout: 5 * time.Second,
		StartTimeout: 5 * time.Second,
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func newSup(t *testing.T, rt *fakeRuntime, clk *fakeClock, svcs ...*config.Service) *Supervisor {
	t.Helper()
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	s := New(&config.Config{Services: svcs}, Options{Runtime: rt, Clock: clk, Log: zerolog.Nop()})
	s.Run()
	return s
}

func waitState(t *testing.T, s *Supervisor, name string, want State) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Wait(ctx, func(ss []Snapshot) bool {
		snap, _ := s.Service(name)
		return snap.State == want
	}); err != nil {
		snap, _ := s.Service(name)
		t.Fatalf("%s never reached %s; it is %s (%s)", name, want, snap.State, snap.Reason)
	}
	snap, _ := s.Service(name)
	return snap
}

func TestDependantWaitsForReady(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk,
		svc("db", func(s *config.Service) { s.Notify = true }),
		svc("app", func(s *config.Service) { s.Requires = []string{"db"} }),
	)
	defer s.Close()
	waitState(t, s, "db", Starting)
	// db is up as far as exec goes, but not ready: app must wait.
	time.Sleep(20 * time.Millisecond)
	if snap, _ := s.Service("app"); snap.State != Stopped || snap.Waiting != "waiting for db" {
		t.Fatalf("app is %s (%q) before db is ready", snap.State, snap.Waiting)
	}
	rt.inst("db").h.OnNotify(notify.Message{Ready: true, Status: "ok", HasStatus: true}, nil)
	waitState(t, s, "app", Running)
	if got := s.Status()[0]; got.Name != "db" || got.Status != "ok" {
		t.Errorf("first in order %s with status %q, want db with \"ok\"", got.Name, got.Status)
	}
	if ev := rt.events(); fmt.Sprint(ev) != "[start db start app]" {
		t.Errorf("events %v", ev)
	}
}

func TestCrashLoopWithFakeClock(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("crash", func(s *config.Service) { s.StartLimitBurst = 3 }))
	defer s.Close()
	for i := 0; i < 3; i++ {
		waitState(t, s, "crash", Running)
		rt.inst("crash").exit(container.Exit{Code: 3})
		if i < 2 {
			snap := waitState(t, s, "crash", Backoff)
			if snap.LastExit != "exited 3" {
				t.Errorf("last exit %q", snap.LastExit)
			}
			clk.Advance(time.Second) // past any backoff delay
		}
	}
	snap := waitState(t, s, "crash", Failed)
	if snap.Restarts != 2 {
		t.Errorf("restarts %d, want 2", snap.Restarts)
	}
}

func TestStartTimeoutStopsAndKills(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	rt.exitOnSignal = false // ignores SIGTERM
	s := newSup(t, rt, clk, svc("mute", func(s *config.Service) { s.Notify = true; s.Restart = config.RestartNever }))
	defer s.Close()
	waitState(t, s, "mute", Starting)
	clk.Advance(5 * time.Second)
	waitState(t, s, "mute", Stopping)
	clk.Advance(5 * time.Second)
	snap := waitState(t, s, "mute", Failed)
	if want := "[start mute signal mute SIGTERM kill mute cleanup mute]"; fmt.Sprint(rt.events()) != want {
		t.Errorf("events %v, want %s", rt.events(), want)
	}
	if snap.Reason != "no READY=1 within 5s (restart = never)" {
		t.Errorf("reason %q", snap.Reason)
	}
}

func TestShutdownStopsInReverseOrder(t *testing.T) {
	before := runtime.NumGoroutine()
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk,
		svc("a", nil),
		svc("b", func(s *config.Service) { s.Requires = []string{"a"} }),
		svc("c", func(s *config.Service) { s.After = []string{"b"} }),
	)
	waitState(t, s, "c", Running)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var stops []string
	for _, e := range rt.events() {
		if len(e) > 7 && e[:7] == "signal " {
			stops = append(stops, e)
		}
	}
	if want := "[signal c SIGTERM signal b SIGTERM signal a SIGTERM]"; fmt.Sprint(stops) != want {
		t.Errorf("stop order %v, want %s", stops, want)
	}
	s.Close()
	// Every goroutine the supervisor started is gone.
	expectGoroutines(t, before)
}

// expectGoroutines waits up to a second for the goroutine count to fall
// back to before, and reports the stacks if it does not.
func expectGoroutines(t *testing.T, before int) {
	t.Helper()
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestSetupFailureIsReportedAndRetried(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	rt.fail["bad"] = errors.New("mount /srv/www: no such file or directory")
	s := newSup(t, rt, clk, svc("bad", nil))
	defer s.Close()
	snap := waitState(t, s, "bad", Backoff)
	if snap.LastExit != "setup failed: mount /srv/www: no such file or directory" {
		t.Errorf("last exit %q", snap.LastExit)
	}
	delete(rt.fail, "bad")
	clk.Advance(time.Second)
	waitState(t, s, "bad", Running)
}

func TestOperatorRequests(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("web", nil))
	defer s.Close()
	waitState(t, s, "web", Running)
	var te *TransitionError
	if err := s.Request("web", EvStart); !errors.As(err, &te) {
		t.Errorf("start while running: %v, want a TransitionError", err)
	}
	if err := s.Request("nope", EvStart); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
	if err := s.Request("web", EvStop); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "web", Stopped)
	// A stopped service stays stopped: the scheduler does not start it again.
	time.Sleep(20 * time.Millisecond)
	if snap, _ := s.Service("web"); snap.State != Stopped {
		t.Errorf("web is %s after an operator stop", snap.State)
	}
	if err := s.Request("web", EvRestart); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "web", Running)
}

func TestServiceWatchdogWithFakeClock(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	rt.exitOnSignal = false
	s := newSup(t, rt, clk, svc("wd", func(s *config.Service) {
		s.Notify, s.Watchdog, s.WatchdogSignal = true, 2*time.Second, unix.SIGABRT
	}))
	defer s.Close()
	waitState(t, s, "wd", Starting)
	ping := func(m notify.Message) {
		done := make(chan struct{})
		rt.inst("wd").h.OnNotify(m, func() { close(done) }) // a barrier: wait until handled
		<-done
	}
	ping(notify.Message{Ready: true, Fields: map[string]string{"READY": "1"}})
	waitState(t, s, "wd", Running)
	// Pings keep it alive past several intervals.
	for i := 0; i < 5; i++ {
		clk.Advance(1500 * time.Millisecond)
		ping(notify.Message{Watchdog: true, Fields: map[string]string{"WATCHDOG": "1"}})
	}
	if snap, _ := s.Service("wd"); snap.State != Running {
		t.Fatalf("pinged service is %s (%s)", snap.State, snap.Reason)
	}
	// Silence: the watchdog fires, SIGABRT, then the kill after stop_timeout.
	clk.Advance(2 * time.Second)
	snap := waitState(t, s, "wd", Stopping)
	if snap.Reason != "watchdog timeout (no WATCHDOG=1 within 2s)" {
		t.Errorf("reason %q", snap.Reason)
	}
	clk.Advance(5 * time.Second)
	// It ran for more than stable_after, so it is restarted at once.
	waitRestarts(t, s, "wd", 1)
	ev := fmt.Sprint(rt.events())
	if !strings.Contains(ev, "signal wd SIGABRT kill wd") {
		t.Errorf("events %s: want SIGABRT then a kill", ev)
	}
}

func TestNotifyExtendTimeoutAndTrigger(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("slow", func(s *config.Service) { s.Notify = true }))
	defer s.Close()
	waitState(t, s, "slow", Starting)
	barrier := func(m notify.Message) {
		done := make(chan struct{})
		rt.inst("slow").h.OnNotify(m, func() { close(done) })
		<-done
	}
	// start_timeout is 5s; the service asks for 20s more after 4s.
	clk.Advance(4 * time.Second)
	barrier(notify.Message{Fields: map[string]string{"EXTEND_TIMEOUT_USEC": "20000000"}})
	clk.Advance(10 * time.Second)
	if snap, _ := s.Service("slow"); snap.State != Starting {
		t.Fatalf("an extended start timed out anyway: %s (%s)", snap.State, snap.Reason)
	}
	barrier(notify.Message{Ready: true, Fields: map[string]string{"READY": "1", "STATUS": "warm"}, Status: "warm", HasStatus: true})
	waitState(t, s, "slow", Running)
	barrier(notify.Message{Fields: map[string]string{"WATCHDOG": "trigger"}})
	snap := waitState(t, s, "slow", Stopping)
	if snap.Reason != "watchdog timeout (WATCHDOG=trigger)" {
		t.Errorf("reason %q", snap.Reason)
	}
}

func TestReloadWaitsForReady(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("app", func(s *config.Service) { s.Notify = true }))
	defer s.Close()
	waitState(t, s, "app", Starting)
	rt.inst("app").h.OnNotify(notify.Message{Ready: true}, nil)
	waitState(t, s, "app", Running)
	if err := s.Request("app", EvReload); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "app", Reloading)
	rt.inst("app").h.OnNotify(notify.Message{Reloading: true}, nil)
	rt.inst("app").h.OnNotify(notify.Message{Ready: true}, nil)
	snap := waitState(t, s, "app", Running)
	if snap.Reason != "reloaded (READY=1)" {
		t.Errorf("reason %q", snap.Reason)
	}
	for i := 0; i < 100 && !strings.Contains(fmt.Sprint(rt.events()), "reload app"); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(fmt.Sprint(rt.events()), "reload app") {
		t.Errorf("no reload sent: %v", rt.events())
	}
}

func waitRestarts(t *testing.T, s *Supervisor, name string, n int) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.Wait(ctx, func([]Snapshot) bool { snap, _ := s.Service(name); return snap.Restarts >= n })
	snap, _ := s.Service(name)
	if snap.Restarts < n {
		t.Fatalf("%s restarted %d times, want %d (%s, %s)", name, snap.Restarts, n, snap.State, snap.Reason)
	}
	return snap
}

func TestRequiresPropagatesStopAndStart(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk,
		svc("db", nil),
		svc("app", func(s *config.Service) { s.Requires = []string{"db"} }),
	)
	defer s.Close()
	waitState(t, s, "app", Running)
	if err := s.Request("db", EvStop); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "db", Stopped)
	waitState(t, s, "app", Stopped)
	var stops []string
	for _, e := range rt.events() {
		if strings.HasPrefix(e, "signal ") {
			stops = append(stops, e)
		}
	}
	if fmt.Sprint(stops) != "[signal app SIGTERM signal db SIGTERM]" {
		t.Errorf("stops %v: app requires db, so it stops first", stops)
	}
	// Starting app starts db first.
	if err := s.Request("app", EvStart); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "app", Running)
	if snap, _ := s.Service("db"); snap.State != Running {
		t.Errorf("db is %s after starting app", snap.State)
	}
	ev := rt.events()
	if fmt.Sprint(ev[len(ev)-2:]) != "[start db start app]" {
		t.Errorf("events %v", ev)
	}
}

func TestStopOfAWaitingServiceHoldsIt(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk,
		svc("db", func(s *config.Service) { s.Notify = true }),
		svc("app", func(s *config.Service) { s.Requires = []string{"db"} }),
	)
	defer s.Close()
	waitState(t, s, "db", Starting)
	if err := s.Request("app", EvStop); err != nil {
		t.Fatalf("stop of a service waiting for its requirement: %v", err)
	}
	rt.inst("db").h.OnNotify(notify.Message{Ready: true}, nil)
	waitState(t, s, "db", Running)
	time.Sleep(20 * time.Millisecond)
	if snap, _ := s.Service("app"); snap.State != Stopped || snap.Waiting != "stopped by an operator before it started" {
		t.Errorf("app is %s (%q)", snap.State, snap.Waiting)
	}
}
