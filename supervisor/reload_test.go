package supervisor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/corral-init/corral/supervisor/config"
)

func cfgOf(svcs ...*config.Service) *config.Config {
	slices.SortFunc(svcs, func(a, b *config.Service) int { return strings.Compare(a.Name, b.Name) })
	return &config.Config{Services: svcs}
}

func TestReloadRestartsOnlyWhatChanged(t *testing.T) {
	before := runtime.NumGoroutine()
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk,
		svc("db", nil),
		svc("app", func(s *config.Service) { s.Requires = []string{"db"} }),
		svc("old", nil),
	)
	waitState(t, s, "app", Running)
	waitState(t, s, "old", Running)
	rt.mu.Lock()
	rt.log = nil
	rt.mu.Unlock()

	next := cfgOf(
		svc("db", func(s *config.Service) { s.StopTimeout = 7 * time.Second }), // changed
		svc("app", func(s *config.Service) { s.Requires = []string{"db"} }),    // same
		svc("web", func(s *config.Service) { s.After = []string{"db"} }),       // added
	)
	plan, err := s.Reload(context.Background(), next)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(plan.Start, plan.Restart, plan.Stop, plan.Keep); got != "[web] [db] [old] [app]" {
		t.Errorf("plan start/restart/stop/keep = %s", got)
	}
	waitState(t, s, "db", Running)
	waitState(t, s, "web", Running)
	ev := rt.events()
	for _, want := range []string{"signal db SIGTERM", "signal old SIGTERM", "start db", "start web"} {
		if !slices.Contains(ev, want) {
			t.Errorf("runtime calls %v: missing %q", ev, want)
		}
	}
	for _, e := range ev {
		if strings.Contains(e, "app") {
			t.Errorf("app is unchanged but saw %q", e)
		}
	}
	if slices.Index(ev, "start web") < slices.Index(ev, "start db") {
		t.Errorf("web (after db) started before db: %v", ev)
	}
	if _, err := s.Service("old"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("old after the reload: %v", err)
	}
	if got := s.Names(); fmt.Sprint(got) != "[db app web]" {
		t.Errorf("names %v", got)
	}
	db, _ := s.Service("db")
	if last := db.History[len(db.History)-1]; last.To != "running" || !slices.ContainsFunc(db.History, func(h TransitionRecord) bool { return h.Event == "reload" }) {
		t.Errorf("db history does not show the replacement: %+v", db.History)
	}
	// A second reload of the same config changes nothing.
	plan, err = s.Reload(context.Background(), next)
	if err != nil || !plan.Empty() {
		t.Errorf("second reload: %+v %v", plan, err)
	}

	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	expectGoroutines(t, before)
}

func TestReloadRejectsABrokenConfigAsAWhole(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("a", nil))
	defer s.Close()
	waitState(t, s, "a", Running)
	bad := cfgOf(svc("a", func(s *config.Service) { s.StopTimeout = time.Second }), svc("b", nil))
	bad.Problems = []*config.Error{{File: "services/c.toml", Line: 3, Key: "restart", Msg: "bad"}}
	bad.Disabled = []config.Disabled{{Name: "c", Reason: "bad"}}
	_, err := s.Reload(context.Background(), bad)
	var re *ReloadError
	if !errors.As(err, &re) || !errors.Is(err, ErrInvalidConfig) || len(re.Problems) != 1 || !strings.Contains(re.Problems[0], "services/c.toml:3") {
		t.Fatalf("reload of a broken config: %v", err)
	}
	if ev := rt.events(); fmt.Sprint(ev) != "[start a]" {
		t.Errorf("something changed: %v", ev)
	}
	if _, err := s.Service("b"); err == nil {
		t.Error("b was added from a rejected config")
	}
}

func TestReloadKeepsAnOperatorsStop(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("a", nil))
	defer s.Close()
	waitState(t, s, "a", Running)
	if err := s.Request("a", EvStop); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "a", Stopped)
	if _, err := s.Reload(context.Background(), cfgOf(svc("a", func(s *config.Service) { s.StopTimeout = time.Second }))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if snap, _ := s.Service("a"); snap.State != Stopped {
		t.Errorf("a is %s after a reload; an operator had stopped it", snap.State)
	}
	if err := s.Request("a", EvStart); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "a", Running)
}

func TestEventsFeedFollowsStateChanges(t *testing.T) {
	rt, clk := newFakeRuntime(), &fakeClock{now: t0}
	s := newSup(t, rt, clk, svc("a", nil))
	defer s.Close()
	waitState(t, s, "a", Running)
	evs, _ := s.Events(0, 0)
	var got []string
	for _, e := range evs {
		got = append(got, e.Svc+":"+e.From+">"+e.To)
	}
	if fmt.Sprint(got) != "[a:stopped>starting a:starting>running]" {
		t.Errorf("events %v", got)
	}
	last := evs[len(evs)-1].Seq
	wake := s.EventsWait()
	go func() { _ = s.Request("a", EvStop) }()
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up on a state change")
	}
	waitState(t, s, "a", Stopped)
	more, lost := s.Events(last, 0)
	if lost != 0 || len(more) == 0 || more[len(more)-1].To != "stopped" {
		t.Errorf("events after %d: %+v (lost %d)", last, more, lost)
	}
	snap, _ := s.Service("a")
	if snap.Boot.Started.IsZero() || snap.Boot.Ready.Before(snap.Boot.Started) {
		t.Errorf("boot times %+v", snap.Boot)
	}
}
