package supervisor

import (
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/supervisor/config"
)

// State is where a service is in its lifecycle (STYLE.md §4).
type State uint8

// The states.
const (
	Stopped   State = iota // not running, not wanted
	Starting               // preparing, launched, waiting for exec or READY=1
	Running                // up
	Reloading              // reload asked for (or RELOADING=1): waiting for READY=1
	Stopping               // stop signal sent, stop timer armed
	Backoff                // exited, waiting before the next start
	Failed                 // gave up; only an operator's Start leaves it
	Done                   // finished and not to be restarted
)

var stateNames = [...]string{"stopped", "starting", "running", "reloading", "stopping", "backoff", "failed", "done"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// MarshalText writes the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown state %q", b)
}

// States lists every state, for exhaustive tests.
var States = []State{Stopped, Starting, Running, Reloading, Stopping, Backoff, Failed, Done}

// Up reports whether the service counts as started for its dependants.
func (s State) Up() bool { return s == Running || s == Reloading || s == Done }

// Down reports whether no process of the service can be running.
func (s State) Down() bool { return s == Stopped || s == Failed || s == Done || s == Backoff }

// EventKind is what happened (past tense) or what was asked for.
type EventKind uint8

// The events. Start, Stop and Restart are requests; the rest are facts.
const (
	EvStart EventKind = iota
	EvStop
	EvRestart
	EvExec           // the service's exec succeeded
	EvReady          // READY=1 from a process of the service
	EvExited         // the main process exited
	EvStartTimeout   // no READY=1 within start_timeout
	EvStopTimeout    // still running stop_timeout after the stop signal
	EvBackoffElapsed // the backoff delay is over
	EvSetupFailed    // preparing or launching failed before exec
	EvReload         // an operator asked for a reload
	EvReloading      // RELOADING=1 from the service
	EvReloadTimeout  // no READY=1 within start_timeout of a reload
	EvWatchdog       // a missed WATCHDOG=1 deadline, or WATCHDOG=trigger
)

var eventNames = [...]string{"start", "stop", "restart", "exec", "ready", "exited", "start-timeout", "stop-timeout", "backoff-elapsed", "setup-failed", "reload", "reloading", "reload-timeout", "watchdog"}

func (e EventKind) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("event(%d)", e)
}

// Events lists every event kind, for exhaustive tests.
var Events = []EventKind{EvStart, EvStop, EvRestart, EvExec, EvReady, EvExited, EvStartTimeout, EvStopTimeout, EvBackoffElapsed, EvSetupFailed, EvReload, EvReloading, EvReloadTimeout, EvWatchdog}

// Event is one input to the state machine.
type Event struct {
	Kind EventKind
	Exit container.Exit // EvExited
	Err  error          // EvSetupFailed
	// Why says what a watchdog event was ("missed", "triggered").
	Why string
}

// ActionKind is an effect the actor carries out after a transition.
type ActionKind uint8

// The actions.
const (
	ActLaunch         ActionKind = iota // prepare and start a new instance
	ActSignal                           // send Signal to the main process
	ActKill                             // SIGKILL every process in the cgroup
	ActArmTimer                         // (re)arm the one timer
	ActCancelTimer                      // cancel the timer
	ActCleanup                          // release the exited instance's cgroup, sockets, pipes
	ActReload                           // send the reload signal (or run the reload command)
	ActArmWatchdog                      // (re)arm the service watchdog
	ActCancelWatchdog                   // disarm it
)

var actionNames = [...]string{"launch", "signal", "kill", "arm-timer", "cancel-timer", "cleanup", "reload", "arm-watchdog", "cancel-watchdog"}

func (a ActionKind) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// TimerKind says what an armed timer means when it fires.
type TimerKind uint8

// The timers.
const (
	TimerStart TimerKind = iota + 1
	TimerStop
	TimerBackoff
	TimerReload
)

// Action is one effect.
type Action struct {
	Kind   ActionKind
	Signal unix.Signal   // ActSignal
	Timer  TimerKind     // ActArmTimer
	Delay  time.Duration // ActArmTimer
}

// Policy is the part of a service definition the state machine reads.
type Policy struct {
	Restart            config.Restart
	RestartDelay       time.Duration
	RestartDelayMax    time.Duration
	StableAfter        time.Duration
	StartLimitBurst    int
	StartLimitInterval time.Duration
	PermanentExitCodes []int
	StopSignal         unix.Signal
	StopTimeout        time.Duration
	Notify             bool
	StartTimeout       time.Duration
	Watchdog           time.Duration
	WatchdogSignal     unix.Signal
}

// PolicyOf extracts the Policy of a service definition.
func PolicyOf(s *config.Service) Policy {
	return Policy{
		Restart: s.Restart, RestartDelay: s.RestartDelay, RestartDelayMax: s.RestartDelayMax,
		StableAfter: s.StableAfter, StartLimitBurst: s.StartLimitBurst, StartLimitInterval: s.StartLimitInterval,
		PermanentExitCodes: s.PermanentExitCodes, StopSignal: s.StopSignal, StopTimeout: s.StopTimeout,
		Notify: s.Notify, StartTimeout: s.StartTimeout, Watchdog: s.Watchdog, WatchdogSignal: s.WatchdogSignal,
	}
}

// afterStop is what Stopping leads to once the process has exited.
type afterStop uint8

const (
	toStopped afterStop = iota // an operator's stop
	toRestart                  // an operator's restart: start again at once
	toFailure                  // a timeout: count it as a failed run
)

// Memo is what the state machine remembers between transitions.
type Memo struct {
	// Attempt counts consecutive failed runs; it sets the backoff delay.
	Attempt int
	// Starts are the launch times inside the start-limit interval.
	Starts []time.Time
	// ExecAt is when the current run exec'd (zero before exec).
	ExecAt time.Time
	// UpAt is when the current run became running: at exec, or at
	// READY=1 for a notify service (zero before). Stability counts from
	// here: a run that never got ready was a failed start, however long
	// it waited.
	UpAt time.Time
	// AfterStop and StopReason are set when entering Stopping.
	AfterStop  afterStop
	StopReason string
	// StopSignal is the signal the stop sent (stop_signal, or
	// watchdog_signal for a watchdog timeout).
	StopSignal unix.Signal
}

// Result is the outcome of one transition.
type Result struct {
	To      State
	Memo    Memo
	Actions []Action
	// Reason is the human explanation for the log line and the history.
	Reason string
	// Ignored means the event does not apply in this state (a stale
	// timer, a duplicate request): nothing changes and nothing is logged.
	Ignored bool
}

// TransitionError is an operator request that does not apply in a state.
type TransitionError struct {
	From  State
	Event EventKind
	Msg   string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s while %s: %s", e.Event, e.From, e.Msg)
}

// Transition is the lifecycle state machine: a pure function of the
// current state, the event, the policy, the memo and the time. jitter, in
// [-1, 1], spreads backoff delays by up to ±10% so that services that
// failed together do not restart in lockstep. Every (state, event) cell is
// decided here; tests walk them all.
func Transition(from State, ev Event, p Policy, m Memo, now time.Time, jitter float64) (Result, error) {
	keep := Result{To: from, Memo: m, Ignored: true}
	launch := func(reason string) Result { return launchResult(p, m, now, reason) }
	stop := func(after afterStop, reason string) Result {
		m := m
		m.AfterStop, m.StopReason, m.StopSignal = after, reason, p.StopSignal
		return Result{To: Stopping, Memo: m, Reason: reason, Actions: []Action{
			{Kind: ActSignal, Signal: p.StopSignal},
			{Kind: ActArmTimer, Timer: TimerStop, Delay: p.StopTimeout},
		}}
	}
	fresh := func() Memo { return Memo{} }

	switch from {
	case Stopped, Done, Failed:
		switch ev.Kind {
		case EvStart, EvRestart:
			m = fresh()
			return launch("start requested"), nil
		case EvStop, EvReload:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "not running"}
		}
		return keep, nil

	case Starting:
		switch ev.Kind {
		case EvExec:
			m.ExecAt = now
			if p.Notify {
				// start_timeout counts from the exec: the container's own
				// setup has its own bound, and a slow machine (or an
				// emulated one) must not eat the service's time.
				return Result{To: Starting, Memo: m, Reason: "exec'd, waiting for READY=1",
					Actions: []Action{{Kind: ActArmTimer, Timer: TimerStart, Delay: p.StartTimeout}}}, nil
			}
			m.UpAt = now
			return Result{To: Running, Memo: m, Reason: "exec'd", Actions: armWatchdog(p)}, nil
		case EvReady:
			if !p.Notify {
				return keep, nil
			}
			m.UpAt = now
			return Result{To: Running, Memo: m, Reason: "READY=1", Actions: append([]Action{{Kind: ActCancelTimer}}, armWatchdog(p)...)}, nil
		case EvExited:
			// A notify service that exits before READY=1 failed to start,
			// whatever its exit code (systemd's "protocol" result).
			ok := ev.Exit.Success() && !p.Notify
			r := afterRun(p, m, now, ok, exitPermanent(p, ev.Exit), ev.Exit.Reason()+beforeReady(p), jitter)
			r.Actions = append([]Action{{Kind: ActCancelTimer}, {Kind: ActCleanup}}, r.Actions...)
			return r, nil
		case EvSetupFailed:
			r := afterRun(p, m, now, false, false, "setup failed: "+errString(ev.Err), jitter)
			r.Actions = append([]Action{{Kind: ActCancelTimer}, {Kind: ActCleanup}}, r.Actions...)
			return r, nil
		case EvStartTimeout:
			return stop(toFailure, fmt.Sprintf("no READY=1 within %s", p.StartTimeout)), nil
		case EvStop:
			return stop(toStopped, "stop requested"), nil
		case EvRestart:
			return stop(toRestart, "restart requested"), nil
		case EvStart:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "already starting"}
		case EvReload:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "not started yet"}
		}
		return keep, nil

	case Running, Reloading:
		up := func(r Result) Result { // leaving the up states disarms the watchdog
			r.Actions = append([]Action{{Kind: ActCancelWatchdog}}, r.Actions...)
			return r
		}
		switch ev.Kind {
		case EvExited:
			r := afterRun(p, m, now, ev.Exit.Success(), exitPermanent(p, ev.Exit), ev.Exit.Reason(), jitter)
			r.Actions = append([]Action{{Kind: ActCancelTimer}, {Kind: ActCleanup}}, r.Actions...)
			return up(r), nil
		case EvStop:
			return up(stop(toStopped, "stop requested")), nil
		case EvRestart:
			return up(stop(toRestart, "restart requested")), nil
		case EvWatchdog:
			r := stop(toFailure, "watchdog timeout ("+ev.Why+")")
			r.Actions[0].Signal, r.Memo.StopSignal = p.WatchdogSignal, p.WatchdogSignal
			return up(r), nil
		case EvStart:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "already running"}
		}
		if from == Running {
			switch ev.Kind {
			case EvReload:
				if !p.Notify {
					return Result{To: Running, Memo: m, Reason: "reload requested", Actions: []Action{{Kind: ActReload}}}, nil
				}
				return Result{To: Reloading, Memo: m, Reason: "reload requested: waiting for READY=1", Actions: []Action{
					{Kind: ActArmTimer, Timer: TimerReload, Delay: p.StartTimeout}, {Kind: ActReload}}}, nil
			case EvReloading:
				if !p.Notify {
					return keep, nil
				}
				return Result{To: Reloading, Memo: m, Reason: "RELOADING=1: waiting for READY=1", Actions: []Action{
					{Kind: ActArmTimer, Timer: TimerReload, Delay: p.StartTimeout}}}, nil
			}
			return keep, nil
		}
		switch ev.Kind { // Reloading
		case EvReady:
			return Result{To: Running, Memo: m, Reason: "reloaded (READY=1)", Actions: []Action{{Kind: ActCancelTimer}}}, nil
		case EvReloadTimeout:
			// As systemd: a reload that never finishes fails, the service
			// keeps running.
			return Result{To: Running, Memo: m, Reason: fmt.Sprintf("reload failed: no READY=1 within %s; still running", p.StartTimeout)}, nil
		case EvReload:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "already reloading"}
		}
		return keep, nil

	case Stopping:
		switch ev.Kind {
		case EvExited:
			clean := []Action{{Kind: ActCancelTimer}, {Kind: ActCleanup}}
			switch m.AfterStop {
			case toRestart:
				m = fresh()
				r := launch("restarted on request")
				r.Actions = append(clean, r.Actions...)
				return r, nil
			case toFailure:
				r := afterRun(p, m, now, false, false, m.StopReason, jitter)
				r.Actions = append(clean, r.Actions...)
				return r, nil
			}
			return Result{To: Stopped, Memo: fresh(), Actions: clean, Reason: "stopped (" + ev.Exit.Reason() + ")"}, nil
		case EvStopTimeout:
			return Result{To: Stopping, Memo: m, Actions: []Action{{Kind: ActKill}},
				Reason: fmt.Sprintf("still running %s after %s: killing every process in its cgroup", p.StopTimeout, unix.SignalName(m.StopSignal))}, nil
		case EvStop:
			if m.AfterStop == toStopped {
				return keep, nil
			}
			m.AfterStop = toStopped
			return Result{To: Stopping, Memo: m, Reason: "stop requested"}, nil
		case EvStart, EvRestart:
			if m.AfterStop == toRestart {
				return keep, nil
			}
			m.AfterStop = toRestart
			return Result{To: Stopping, Memo: m, Reason: "start requested: will start again once stopped"}, nil
		case EvReload:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "stopping"}
		}
		return keep, nil

	case Backoff:
		switch ev.Kind {
		case EvBackoffElapsed:
			return launch(fmt.Sprintf("restarting (attempt %d)", m.Attempt+1)), nil
		case EvStop:
			return Result{To: Stopped, Memo: fresh(), Actions: []Action{{Kind: ActCancelTimer}}, Reason: "stop requested"}, nil
		case EvStart, EvRestart:
			r := launch("start requested during backoff")
			r.Actions = append([]Action{{Kind: ActCancelTimer}}, r.Actions...)
			return r, nil
		case EvReload:
			return keep, &TransitionError{From: from, Event: ev.Kind, Msg: "not running"}
		}
		return keep, nil
	}
	return keep, fmt.Errorf("unknown state %d", from)
}

// afterRun decides what follows the end of a run (an exit, a failed setup,
// a start timeout): done, failed, restart at once, or back off.
func afterRun(p Policy, m Memo, now time.Time, success, permanent bool, why string, jitter float64) Result {
	switch {
	case permanent:
		return Result{To: Failed, Memo: m, Reason: why + ": this exit code means do not restart"}
	case p.Restart == config.RestartNever && success:
		return Result{To: Done, Memo: m, Reason: why}
	case p.Restart == config.RestartNever:
		return Result{To: Failed, Memo: m, Reason: why + " (restart = never)"}
	case p.Restart == config.RestartOnFailure && success:
		return Result{To: Done, Memo: m, Reason: why}
	}
	// A run that was up longer than the stability window was not a crash
	// loop: reset the backoff and restart at once, with no timer in the way.
	if !m.UpAt.IsZero() && now.Sub(m.UpAt) >= p.StableAfter {
		ran := now.Sub(m.UpAt).Round(time.Millisecond)
		m.Attempt, m.Starts = 0, nil
		return launchResult(p, m, now, fmt.Sprintf("%s after %s up; restarting at once", why, ran))
	}
	m.Attempt++
	m.Starts = pruneStarts(m.Starts, now, p)
	if p.StartLimitBurst > 0 && len(m.Starts) >= p.StartLimitBurst {
		return Result{To: Failed, Memo: m, Reason: fmt.Sprintf("%s; start limit hit: %d starts within %s", why, len(m.Starts), p.StartLimitInterval)}
	}
	d := BackoffDelay(p, m.Attempt, jitter)
	return Result{To: Backoff, Memo: m, Reason: fmt.Sprintf("%s; restarting in %s (attempt %d)", why, d.Round(time.Millisecond), m.Attempt+1),
		Actions: []Action{{Kind: ActArmTimer, Timer: TimerBackoff, Delay: d}}}
}

// launchResult moves to Starting and launches a new instance, recording
// the start for the start limit.
func launchResult(p Policy, m Memo, now time.Time, reason string) Result {
	m.ExecAt, m.UpAt = time.Time{}, time.Time{}
	m.Starts = pruneStarts(append(slices.Clone(m.Starts), now), now, p)
	// Launch comes last: it feeds the next event (exec, or setup failed)
	// straight back into the machine, and that transition's actions must
	// not be overridden by ones still queued from this one.
	acts := []Action{{Kind: ActLaunch}}
	return Result{To: Starting, Memo: m, Actions: acts, Reason: reason}
}

// BackoffDelay is the delay before restart number attempt (1 = after the
// first failure): RestartDelay doubled per attempt, capped at
// RestartDelayMax, then spread by jitter·10%.
func BackoffDelay(p Policy, attempt int, jitter float64) time.Duration {
	d := p.RestartDelay
	for i := 1; i < attempt && d < p.RestartDelayMax; i++ {
		d *= 2
	}
	if d > p.RestartDelayMax {
		d = p.RestartDelayMax
	}
	jitter = max(-1, min(1, jitter))
	return d + time.Duration(float64(d)*0.1*jitter)
}

func pruneStarts(starts []time.Time, now time.Time, p Policy) []time.Time {
	out := starts[:0:0]
	for _, t := range starts {
		if now.Sub(t) < p.StartLimitInterval {
			out = append(out, t)
		}
	}
	// Only the newest burst entries can ever matter.
	if p.StartLimitBurst > 0 && len(out) > p.StartLimitBurst {
		out = out[len(out)-p.StartLimitBurst:]
	}
	return out
}

func exitPermanent(p Policy, e container.Exit) bool {
	return e.Signal == 0 && e.Code > 0 && slices.Contains(p.PermanentExitCodes, e.Code)
}

// armWatchdog arms the service watchdog when the policy has one.
func armWatchdog(p Policy) []Action {
	if p.Watchdog <= 0 {
		return nil
	}
	return []Action{{Kind: ActArmWatchdog}}
}

func beforeReady(p Policy) string {
	if p.Notify {
		return " before READY=1"
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}
