package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/supervisor/config"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func basePolicy() Policy {
	return Policy{
		Restart: config.RestartOnFailure, RestartDelay: 100 * time.Millisecond, RestartDelayMax: 2 * time.Second,
		StableAfter: 10 * time.Second, StartLimitBurst: 0, StartLimitInterval: time.Minute,
		PermanentExitCodes: []int{125}, StopSignal: unix.SIGTERM, StopTimeout: 5 * time.Second,
		StartTimeout: 3 * time.Second,
	}
}

func kinds(acts []Action) string {
	var s []string
	for _, a := range acts {
		k := a.Kind.String()
		if a.Kind == ActArmTimer {
			k += fmt.Sprintf("(%d,%s)", a.Timer, a.Delay)
		}
		s = append(s, k)
	}
	return strings.Join(s, " ")
}

var (
	crash = Event{Kind: EvExited, Exit: container.Exit{Code: 3}}
	clean = Event{Kind: EvExited, Exit: container.Exit{Code: 0}}
)

func ev(k EventKind) Event {
	switch k {
	case EvExited:
		return crash
	case EvSetupFailed:
		return Event{Kind: k, Err: errors.New("mount /x: no such file or directory")}
	}
	return Event{Kind: k}
}

// cell is the expected outcome of one (state, event) pair.
type cell struct {
	to      State
	acts    string
	ignored bool
	terr    bool // a TransitionError
}

// TestEveryCell walks every state × event with an on-failure, non-notify
// policy, a fresh memo and a run that exec'd one second ago.
func TestEveryCell(t *testing.T) {
	ign := func(s State) cell { return cell{to: s, ignored: true} }
	stop := "signal arm-timer(2,5s)"
	relaunch := "launch"
	backoff := "arm-timer(3,100ms)"
	leave := "cancel-watchdog "
	want := map[State]map[EventKind]cell{
		Stopped: {EvStart: {to: Starting, acts: relaunch}, EvRestart: {to: Starting, acts: relaunch}, EvStop: {to: Stopped, ignored: true, terr: true}, EvReload: {to: Stopped, ignored: true, terr: true}},
		Done:    {EvStart: {to: Starting, acts: relaunch}, EvRestart: {to: Starting, acts: relaunch}, EvStop: {to: Done, ignored: true, terr: true}, EvReload: {to: Done, ignored: true, terr: true}},
		Failed:  {EvStart: {to: Starting, acts: relaunch}, EvRestart: {to: Starting, acts: relaunch}, EvStop: {to: Failed, ignored: true, terr: true}, EvReload: {to: Failed, ignored: true, terr: true}},
		Starting: {
			EvStart: {to: Starting, ignored: true, terr: true}, EvStop: {to: Stopping, acts: stop}, EvRestart: {to: Stopping, acts: stop},
			EvExec: {to: Running}, EvExited: {to: Backoff, acts: "cancel-timer cleanup " + backoff},
			EvSetupFailed: {to: Backoff, acts: "cancel-timer cleanup " + backoff}, EvStartTimeout: {to: Stopping, acts: stop},
			EvReload: {to: Starting, ignored: true, terr: true},
		},
		Running: {
			EvStart: {to: Running, ignored: true, terr: true}, EvStop: {to: Stopping, acts: leave + stop}, EvRestart: {to: Stopping, acts: leave + stop},
			EvExited: {to: Backoff, acts: leave + "cancel-timer cleanup " + backoff}, EvWatchdog: {to: Stopping, acts: leave + stop},
			EvReload: {to: Running, acts: "reload"},
		},
		Reloading: {
			EvStart: {to: Reloading, ignored: true, terr: true}, EvStop: {to: Stopping, acts: leave + stop}, EvRestart: {to: Stopping, acts: leave + stop},
			EvExited: {to: Backoff, acts: leave + "cancel-timer cleanup " + backoff}, EvWatchdog: {to: Stopping, acts: leave + stop},
			EvReady: {to: Running, acts: "cancel-timer"}, EvReloadTimeout: {to: Running}, EvReload: {to: Reloading, ignored: true, terr: true},
		},
		Stopping: {
			EvStart: {to: Stopping}, EvRestart: {to: Stopping}, EvStop: ign(Stopping),
			EvExited: {to: Stopped, acts: "cancel-timer cleanup"}, EvStopTimeout: {to: Stopping, acts: "kill"},
			EvReload: {to: Stopping, ignored: true, terr: true},
		},
		Backoff: {
			EvStart: {to: Starting, acts: "cancel-timer " + relaunch}, EvRestart: {to: Starting, acts: "cancel-timer " + relaunch},
			EvStop: {to: Stopped, acts: "cancel-timer"}, EvBackoffElapsed: {to: Starting, acts: relaunch},
			EvReload: {to: Backoff, ignored: true, terr: true},
		},
	}
	for _, st := range States {
		for _, k := range Events {
			t.Run(st.String()+"/"+k.String(), func(t *testing.T) {
				w, ok := want[st][k]
				if !ok {
					w = ign(st) // every cell not listed must be an explicit "ignore"
				}
				m := Memo{ExecAt: t0.Add(-time.Second)}
				got, err := Transition(st, ev(k), basePolicy(), m, t0, 0)
				var te *TransitionError
				if gotTE := errors.As(err, &te); gotTE != w.terr || (err != nil && !gotTE) {
					t.Fatalf("err = %v, want transition error: %v", err, w.terr)
				}
				if got.To != w.to || got.Ignored != w.ignored || kinds(got.Actions) != w.acts {
					t.Errorf("got to=%s ignored=%v acts=%q, want to=%s ignored=%v acts=%q (reason %q)",
						got.To, got.Ignored, kinds(got.Actions), w.to, w.ignored, w.acts, got.Reason)
				}
				if !got.Ignored && got.Reason == "" {
					t.Error("a transition without a reason")
				}
			})
		}
	}
}

func TestNotifyWaitsForReady(t *testing.T) {
	p := basePolicy()
	p.Notify = true
	r, _ := Transition(Stopped, ev(EvStart), p, Memo{}, t0, 0)
	if r.To != Starting || kinds(r.Actions) != "launch" {
		t.Fatalf("start: %s %q", r.To, kinds(r.Actions))
	}
	r, _ = Transition(Starting, ev(EvExec), p, r.Memo, t0, 0)
	if r.To != Starting || r.Memo.ExecAt != t0 || kinds(r.Actions) != "arm-timer(1,3s)" {
		t.Fatalf("exec of a notify service: %s, ExecAt %v, %q: start_timeout counts from the exec", r.To, r.Memo.ExecAt, kinds(r.Actions))
	}
	r2, _ := Transition(Starting, ev(EvReady), p, r.Memo, t0, 0)
	if r2.To != Running || kinds(r2.Actions) != "cancel-timer" {
		t.Errorf("ready: %s %q", r2.To, kinds(r2.Actions))
	}
	// No READY=1 in time: stop it, and count that as a failed run.
	r3, _ := Transition(Starting, ev(EvStartTimeout), p, r.Memo, t0.Add(3*time.Second), 0)
	if r3.To != Stopping || r3.Memo.AfterStop != toFailure || !strings.Contains(r3.Reason, "no READY=1 within 3s") {
		t.Fatalf("timeout: %+v", r3)
	}
	r4, _ := Transition(Stopping, clean, p, r3.Memo, t0.Add(4*time.Second), 0)
	if r4.To != Backoff || !strings.Contains(r4.Reason, "no READY=1") {
		t.Errorf("exit after timeout: %s %q", r4.To, r4.Reason)
	}
	// Exiting before READY=1 fails at once (then backs off).
	r5, _ := Transition(Starting, crash, p, r.Memo, t0, 0)
	if r5.To != Backoff || !strings.Contains(r5.Reason, "exited 3 before READY=1") {
		t.Errorf("early exit: %s %q", r5.To, r5.Reason)
	}
}

func TestRestartPolicies(t *testing.T) {
	ran := Memo{ExecAt: t0.Add(-time.Second)}
	tests := []struct {
		name    string
		restart config.Restart
		exit    container.Exit
		want    State
	}{
		{"on-failure clean exit is done", config.RestartOnFailure, container.Exit{Code: 0}, Done},
		{"on-failure crash backs off", config.RestartOnFailure, container.Exit{Code: 1}, Backoff},
		{"on-failure signal backs off", config.RestartOnFailure, container.Exit{Code: -1, Signal: unix.SIGSEGV}, Backoff},
		{"always restarts a clean exit", config.RestartAlways, container.Exit{Code: 0}, Backoff},
		{"never: clean exit is done", config.RestartNever, container.Exit{Code: 0}, Done},
		{"never: crash is failed", config.RestartNever, container.Exit{Code: 2}, Failed},
		{"permanent exit code is failed", config.RestartAlways, container.Exit{Code: 125}, Failed},
		{"oom kill backs off", config.RestartOnFailure, container.Exit{Code: -1, Signal: unix.SIGKILL, OOMKilled: true}, Backoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := basePolicy()
			p.Restart = tt.restart
			r, err := Transition(Running, Event{Kind: EvExited, Exit: tt.exit}, p, ran, t0, 0)
			if err != nil || r.To != tt.want {
				t.Errorf("got %s (%v, %q), want %s", r.To, err, r.Reason, tt.want)
			}
		})
	}
}

func TestStableRunRestartsAtOnce(t *testing.T) {
	p := basePolicy()
	m := Memo{Attempt: 4, ExecAt: t0.Add(-11 * time.Second), UpAt: t0.Add(-11 * time.Second), Starts: []time.Time{t0.Add(-20 * time.Second)}}
	r, _ := Transition(Running, crash, p, m, t0, 0)
	if r.To != Starting || kinds(r.Actions) != "cancel-watchdog cancel-timer cleanup launch" || r.Memo.Attempt != 0 {
		t.Errorf("got %s %q attempt %d, want an immediate relaunch with the counter reset", r.To, kinds(r.Actions), r.Memo.Attempt)
	}
}

// A notify service that waits out start_timeout (longer than stable_after)
// without READY=1 failed to start: it backs off, and the attempts count.
func TestNeverReadyIsNotAStableRun(t *testing.T) {
	p := basePolicy()
	p.Notify, p.StartTimeout = true, 30*time.Second
	m := Memo{Attempt: 2, ExecAt: t0.Add(-31 * time.Second)}
	r, _ := Transition(Starting, ev(EvStartTimeout), p, m, t0, 0)
	if r.To != Stopping {
		t.Fatalf("start timeout: %s, want stopping", r.To)
	}
	r, _ = Transition(Stopping, crash, p, r.Memo, t0.Add(time.Second), 0)
	if r.To != Backoff || r.Memo.Attempt != 3 {
		t.Errorf("after a start that never got ready: %s, attempt %d (%q); want backoff, attempt 3", r.To, r.Memo.Attempt, r.Reason)
	}
	// Once ready, the same wait is a stable run.
	m = Memo{Attempt: 2, ExecAt: t0.Add(-31 * time.Second)}
	r, _ = Transition(Starting, ev(EvReady), p, m, t0.Add(-30*time.Second), 0)
	r, _ = Transition(r.To, crash, p, r.Memo, t0, 0)
	if r.To != Starting || r.Memo.Attempt != 0 {
		t.Errorf("a crash 30 s after READY=1: %s, attempt %d; want an immediate restart", r.To, r.Memo.Attempt)
	}
}

func TestBackoffDoublesToTheCapAndStartLimitFails(t *testing.T) {
	p := basePolicy()
	p.StartLimitBurst = 6
	clock := t0
	var m Memo
	r, _ := Transition(Stopped, ev(EvStart), p, m, clock, 0)
	var delays []time.Duration
	for i := 0; i < 10 && r.To != Failed; i++ {
		r, _ = Transition(Starting, ev(EvExec), p, r.Memo, clock, 0)
		r, _ = Transition(Running, crash, p, r.Memo, clock.Add(50*time.Millisecond), 0)
		if r.To == Failed {
			break
		}
		d := r.Actions[len(r.Actions)-1].Delay
		delays = append(delays, d)
		clock = clock.Add(50*time.Millisecond + d)
		r, _ = Transition(Backoff, ev(EvBackoffElapsed), p, r.Memo, clock, 0)
	}
	want := "[100ms 200ms 400ms 800ms 1.6s]"
	if fmt.Sprint(delays) != want {
		t.Errorf("delays %v, want %s", delays, want)
	}
	if r.To != Failed || !strings.Contains(r.Reason, "start limit hit: 6 starts within 1m0s") {
		t.Errorf("got %s %q, want failed at the start limit", r.To, r.Reason)
	}
	if d := BackoffDelay(p, 10, 0); d != 2*time.Second {
		t.Errorf("capped delay %s, want 2s", d)
	}
	if lo, hi := BackoffDelay(p, 1, -1), BackoffDelay(p, 1, 1); lo != 90*time.Millisecond || hi != 110*time.Millisecond {
		t.Errorf("jitter range %s..%s, want 90ms..110ms", lo, hi)
	}
}

func TestStoppingRemembersWhatComesNext(t *testing.T) {
	p := basePolicy()
	r, _ := Transition(Running, ev(EvStop), p, Memo{}, t0, 0)
	r, _ = Transition(Stopping, ev(EvStart), p, r.Memo, t0, 0)
	r, _ = Transition(Stopping, clean, p, r.Memo, t0, 0)
	if r.To != Starting || kinds(r.Actions) != "cancel-timer cleanup launch" {
		t.Errorf("start during stop: %s %q, want a relaunch once stopped", r.To, kinds(r.Actions))
	}
	r, _ = Transition(Running, ev(EvRestart), p, Memo{}, t0, 0)
	r, _ = Transition(Stopping, ev(EvStop), p, r.Memo, t0, 0)
	r, _ = Transition(Stopping, clean, p, r.Memo, t0, 0)
	if r.To != Stopped {
		t.Errorf("stop during restart: %s, want stopped", r.To)
	}
}

func TestStateNamesRoundTrip(t *testing.T) {
	for _, s := range States {
		b, _ := s.MarshalText()
		var got State
		if err := got.UnmarshalText(b); err != nil || got != s {
			t.Errorf("%s: round trip gave %s, %v", s, got, err)
		}
	}
	for _, e := range Events {
		if strings.HasPrefix(e.String(), "event(") {
			t.Errorf("event %d has no name", e)
		}
	}
}

func TestWatchdogAndReload(t *testing.T) {
	p := basePolicy()
	p.Notify, p.Watchdog, p.WatchdogSignal = true, 2*time.Second, unix.SIGABRT
	r, _ := Transition(Starting, ev(EvReady), p, Memo{ExecAt: t0}, t0, 0)
	if r.To != Running || kinds(r.Actions) != "cancel-timer arm-watchdog" {
		t.Fatalf("ready with a watchdog: %s %q", r.To, kinds(r.Actions))
	}
	r, _ = Transition(Running, Event{Kind: EvWatchdog, Why: "no WATCHDOG=1 within 2s"}, p, r.Memo, t0, 0)
	if r.To != Stopping || r.Actions[1].Signal != unix.SIGABRT || r.Memo.AfterStop != toFailure || r.Reason != "watchdog timeout (no WATCHDOG=1 within 2s)" {
		t.Fatalf("watchdog: %+v", r)
	}
	// The kill after stop_timeout names the signal that was sent.
	if k, _ := Transition(Stopping, ev(EvStopTimeout), p, r.Memo, t0.Add(5*time.Second), 0); !strings.Contains(k.Reason, "after SIGABRT") {
		t.Errorf("stop timeout after the watchdog signal: %q", k.Reason)
	}
	r, _ = Transition(Stopping, crash, p, r.Memo, t0.Add(time.Second), 0)
	if r.To != Backoff || !strings.HasPrefix(r.Reason, "watchdog timeout") {
		t.Errorf("after a watchdog kill: %s %q, want a failed run that backs off", r.To, r.Reason)
	}
	// Reload of a notify service: RELOADING=1 ... READY=1, or a timeout.
	r, _ = Transition(Running, ev(EvReload), p, Memo{ExecAt: t0}, t0, 0)
	if r.To != Reloading || kinds(r.Actions) != "arm-timer(4,3s) reload" {
		t.Fatalf("reload: %s %q", r.To, kinds(r.Actions))
	}
	r2, _ := Transition(Reloading, ev(EvReady), p, r.Memo, t0, 0)
	if r2.To != Running {
		t.Errorf("READY=1 after reload: %s", r2.To)
	}
	r3, _ := Transition(Reloading, ev(EvReloadTimeout), p, r.Memo, t0, 0)
	if r3.To != Running || !strings.Contains(r3.Reason, "reload failed") {
		t.Errorf("reload timeout: %s %q", r3.To, r3.Reason)
	}
	// A service may announce a reload by itself.
	r4, _ := Transition(Running, ev(EvReloading), p, Memo{}, t0, 0)
	if r4.To != Reloading {
		t.Errorf("RELOADING=1: %s", r4.To)
	}
}
