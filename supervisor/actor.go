package supervisor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/internal/logring"
	"github.com/corral-init/corral/supervisor/config"
	"github.com/corral-init/corral/supervisor/notify"
)

// Transition is one entry of a service's history.
type TransitionRecord struct {
	Time   time.Time `json:"time"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Event  string    `json:"event"`
	Reason string    `json:"reason"`
}

// historyLen bounds each service's transition history.
const historyLen = 32

// Snapshot is an immutable copy of one service's status.
type Snapshot struct {
	Name     string             `json:"name"`
	State    State              `json:"state"`
	Since    time.Time          `json:"since"`
	Pid      int                `json:"pid,omitempty"`
	Restarts int                `json:"restarts"`
	LastExit string             `json:"last_exit,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	Status   string             `json:"status,omitempty"` // STATUS= text
	Address  string             `json:"address,omitempty"`
	Notify   bool               `json:"notify,omitempty"`
	Cgroup   string             `json:"cgroup,omitempty"`
	Waiting  string             `json:"waiting,omitempty"`  // why it has not been started yet
	Degraded []string           `json:"degraded,omitempty"` // sandbox parts that did not take effect
	History  []TransitionRecord `json:"history,omitempty"`
	// Counters since corral started (or since a reload replaced the
	// service), for status and metrics.
	Exits            int    `json:"exits"`
	ExitCode         int    `json:"exit_code"`             // of the last exit; -1 if killed by a signal
	ExitSignal       string `json:"exit_signal,omitempty"` // of the last exit
	OOMKills         int    `json:"oom_kills"`
	WatchdogTimeouts int    `json:"watchdog_timeouts"`
	// Boot is when the service was queued, first started and first up.
	Boot BootTimes `json:"boot"`
	// Requires and After are the service's dependencies, for analyze.
	Requires []string `json:"requires,omitempty"`
	After    []string `json:"after,omitempty"`

	inst Instance // for live cgroup readings; never used to change anything
}

// BootTimes is one service's part of the boot timeline.
type BootTimes struct {
	Queued  time.Time `json:"queued"`           // known to the supervisor
	Started time.Time `json:"started,omitzero"` // first launch
	Ready   time.Time `json:"ready,omitzero"`   // first up (running, or a finished one-shot)
}

// CPUTime reads the CPU time the service's cgroup has used.
func (s Snapshot) CPUTime() (time.Duration, bool) {
	if s.inst == nil {
		return 0, false
	}
	d, err := s.inst.CPU()
	return d, err == nil
}

// MemoryBytes reads the service's current memory from its cgroup.
func (s Snapshot) MemoryBytes() (int64, bool) {
	if s.inst == nil {
		return 0, false
	}
	n, err := s.inst.Memory()
	return n, err == nil
}

// actorMsg is everything that reaches an actor.
type actorMsg struct {
	ev Event
	// gen ties exits and notify messages to an instance, and firings to a
	// timer; stale ones are ignored.
	gen      uint64
	timer    bool
	watchdog bool // with timer: the service watchdog's timer
	notify   *notify.Message
	release  func() // with notify: answers BARRIER=1 once handled
	waiting  *string
	signal   unix.Signal // an operator's kill: not a state change
	ping     bool        // answer on reply: the actor is alive
	reply    chan error
}

// actor owns one service's state; everything reaches it through inbox.
type actor struct {
	def     *config.Service
	policy  Policy
	rt      Runtime
	clock   Clock
	log     zerolog.Logger
	inbox   chan actorMsg
	logs    *Stream
	output  func(svc, text string, partial bool)
	changed func()
	emit    func(EventRecord)
	rng     *rand.Rand
	// quit is closed when the actor is retired (its service was removed or
	// replaced by a config reload); exited when its goroutine has ended.
	quit   chan struct{}
	exited chan struct{}

	snap atomicSnapshot

	// Owned by the actor goroutine.
	state    State
	memo     Memo
	since    time.Time
	inst     Instance
	instGen  uint64
	timer    Timer
	timerGen uint64
	timerFor TimerKind
	deadline time.Time // of the lifecycle timer, for EXTEND_TIMEOUT_USEC
	// The service watchdog: its own timer, armed while up.
	wdTimer    Timer
	wdGen      uint64
	wdInterval time.Duration // WATCHDOG_USEC= may change it
	launches   int
	restarts   int
	lastExit   string
	reason     string
	status     string
	waiting    string
	history    []TransitionRecord
	exits      int
	exitCode   int
	exitSignal string
	oomKills   int
	wdTimeouts int
	boot       BootTimes
	dropped    atomic.Uint64 // notify messages lost to a full inbox
}

// actorEnv is what every actor of a supervisor shares.
type actorEnv struct {
	rt      Runtime
	clock   Clock
	log     zerolog.Logger
	output  func(svc, text string, partial bool)
	changed func()
	emit    func(EventRecord)
	logs    *Logs
}

func newActor(def *config.Service, env actorEnv) *actor {
	clock := env.clock
	a := &actor{
		def:     def,
		policy:  PolicyOf(def),
		rt:      env.rt,
		clock:   clock,
		log:     env.log.With().Str("svc", def.Name).Logger(),
		inbox:   make(chan actorMsg, 16), // exits block (on their own goroutine), notify overflow is counted,
		logs:    env.logs.Stream(def.Name),
		output:  env.output,
		changed: env.changed,
		emit:    env.emit,
		rng:     rand.New(rand.NewPCG(uint64(clock.Now().UnixNano()), uint64(len(def.Name)))),
		quit:    make(chan struct{}),
		exited:  make(chan struct{}),
		state:   Stopped,
		since:   clock.Now(),
		boot:    BootTimes{Queued: clock.Now()},
	}
	a.publish()
	return a
}

func (a *actor) run(done <-chan struct{}) {
	defer close(a.exited)
	for {
		select {
		case m := <-a.inbox:
			a.safeHandle(m)
		case <-a.quit:
			a.stopTimer()
			a.stopWatchdog()
			return
		case <-done:
			return
		}
	}
}

// send delivers a message unless the actor has been retired.
func (a *actor) send(m actorMsg) bool {
	select {
	case a.inbox <- m:
		return true
	case <-a.quit:
		return false
	}
}

// errRetired answers requests to an actor a reload has retired.
var errRetired = errors.New("the service was just replaced or removed by a config reload; try again")

// ask sends a message with a reply channel and waits for the answer.
func (a *actor) ask(m actorMsg) error {
	reply := make(chan error, 1)
	m.reply = reply
	if !a.send(m) {
		return errRetired
	}
	select {
	case err := <-reply:
		return err
	case <-a.exited:
		return errRetired
	}
}

// retire stops the actor's goroutine (its service must be down) and waits
// for it.
func (a *actor) retire() {
	close(a.quit)
	<-a.exited
}

// safeHandle keeps a bug in one service's handling from taking PID 1 down:
// the panic is logged with its stack and the service is marked failed.
func (a *actor) safeHandle(m actorMsg) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("internal error handling service event")
			if m.reply != nil {
				m.reply <- fmt.Errorf("internal error: %v", r)
			}
			a.setState(Failed, Event{Kind: EvSetupFailed}, fmt.Sprintf("internal error: %v", r))
		}
	}()
	a.handle(m)
}

// request sends an operator request and waits for the answer.
func (a *actor) request(kind EventKind) error { return a.ask(actorMsg{ev: Event{Kind: kind}}) }

// kill sends sig to the running instance's main process.
func (a *actor) kill(sig unix.Signal) error { return a.ask(actorMsg{signal: sig}) }

// post sends a request without waiting for the answer.
func (a *actor) post(kind EventKind) { a.send(actorMsg{ev: Event{Kind: kind}}) }

func (a *actor) setWaiting(why string) { a.send(actorMsg{waiting: &why}) }

func (a *actor) handle(m actorMsg) {
	switch {
	case m.ping:
		m.reply <- nil
		return
	case m.signal != 0:
		err := ErrNotRunning
		if a.inst != nil {
			a.log.Info().Str("signal", unix.SignalName(m.signal)).Int("pid", a.inst.Pid()).Msg("kill requested")
			err = a.inst.Signal(m.signal)
		}
		if m.reply != nil {
			m.reply <- err
		}
		return
	case m.waiting != nil:
		if a.waiting != *m.waiting {
			a.waiting = *m.waiting
			a.publish()
		}
		return
	case m.notify != nil:
		if m.release != nil {
			defer m.release()
		}
		if m.gen != a.instGen || a.inst == nil {
			return
		}
		ev, ok := a.notified(m.notify)
		if !ok {
			return
		}
		m.ev = ev
	case m.timer && m.watchdog:
		if m.gen != a.wdGen {
			return
		}
		a.wdTimer = nil
		m.ev = Event{Kind: EvWatchdog, Why: fmt.Sprintf("no WATCHDOG=1 within %s", a.wdInterval)}
	case m.timer:
		if m.gen != a.timerGen {
			return // a timer that was re-armed or cancelled
		}
		a.timer = nil
		switch a.timerFor {
		case TimerStart:
			m.ev = Event{Kind: EvStartTimeout}
		case TimerStop:
			m.ev = Event{Kind: EvStopTimeout}
		case TimerBackoff:
			m.ev = Event{Kind: EvBackoffElapsed}
		case TimerReload:
			m.ev = Event{Kind: EvReloadTimeout}
		}
	case m.ev.Kind == EvExited && m.gen != a.instGen:
		return
	}
	err := a.event(m.ev)
	if m.reply != nil {
		m.reply <- err
	}
}

// notified applies one notify message: the parts that are status (STATUS=,
// ERRNO=, STOPPING=1), timers (WATCHDOG=1, WATCHDOG_USEC=,
// EXTEND_TIMEOUT_USEC=) and, if any, the lifecycle event it means.
func (a *actor) notified(n *notify.Message) (Event, bool) {
	changed := false
	if n.HasStatus && n.Status != a.status {
		a.status, changed = n.Status, true
	}
	if v, ok := n.Fields["ERRNO"]; ok {
		if e, err := strconv.Atoi(v); err == nil && e > 0 {
			a.status, changed = fmt.Sprintf("%s (errno %d: %s)", strings.TrimSpace(a.status), e, unix.Errno(e).Error()), true
		}
	}
	if n.Stopping {
		a.log.Info().Msg("STOPPING=1: the service is shutting down")
	}
	if v, ok := n.Fields["WATCHDOG_USEC"]; ok {
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us >= 0 {
			a.wdInterval = time.Duration(us) * time.Microsecond
			a.log.Info().Dur("watchdog", a.wdInterval).Msg("WATCHDOG_USEC: watchdog interval changed")
			if a.wdTimer != nil || (us > 0 && (a.state == Running || a.state == Reloading)) {
				a.armWatchdog()
			}
		}
	}
	if v, ok := n.Fields["EXTEND_TIMEOUT_USEC"]; ok && a.timer != nil {
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us > 0 {
			if want := a.clock.Now().Add(time.Duration(us) * time.Microsecond); want.After(a.deadline) {
				a.armTimer(a.timerFor, want.Sub(a.clock.Now()))
				a.log.Debug().Time("deadline", want).Msg("EXTEND_TIMEOUT_USEC: timeout extended")
			}
		}
	}
	if changed {
		a.log.Debug().Str("status", a.status).Msg("status")
		a.publish()
	}
	switch {
	case n.Fields["WATCHDOG"] == "trigger":
		return Event{Kind: EvWatchdog, Why: "WATCHDOG=trigger"}, true
	case n.Watchdog && a.wdTimer != nil:
		a.armWatchdog()
	}
	switch {
	case n.Reloading:
		return Event{Kind: EvReloading}, true
	case n.Ready:
		return Event{Kind: EvReady}, true
	}
	return Event{}, false
}

// event runs one transition and carries out its actions.
func (a *actor) event(ev Event) error {
	now := a.clock.Now()
	// A launch an operator asked for is not a restart: RESTARTS counts the
	// ones the policy made, as systemd's NRestarts.
	operator := ev.Kind == EvStart || ev.Kind == EvRestart || (a.state == Stopping && a.memo.AfterStop == toRestart)
	res, err := Transition(a.state, ev, a.policy, a.memo, now, a.rng.Float64()*2-1)
	if err != nil {
		var te *TransitionError
		if errors.As(err, &te) {
			return err
		}
		a.log.Error().Err(err).Msg("state machine")
		return err
	}
	if res.Ignored {
		return nil
	}
	a.memo = res.Memo
	if !operator && slices.ContainsFunc(res.Actions, func(x Action) bool { return x.Kind == ActLaunch }) {
		a.restarts++
	}
	if ev.Kind == EvExited {
		a.lastExit = ev.Exit.Reason()
		a.exits++
		a.exitCode, a.exitSignal = ev.Exit.Code, ""
		if ev.Exit.Signal != 0 {
			a.exitSignal = unix.SignalName(ev.Exit.Signal)
		}
		if ev.Exit.OOMKilled {
			a.oomKills++
		}
	} else if ev.Kind == EvWatchdog {
		a.wdTimeouts++
	} else if ev.Kind == EvSetupFailed {
		a.lastExit = "setup failed: " + errString(ev.Err)
	}
	a.setState(res.To, ev, res.Reason)
	for _, act := range res.Actions {
		a.do(act)
	}
	if len(res.Actions) > 0 {
		a.publish() // the actions may have changed the instance (cleanup)
	}
	return nil
}

func (a *actor) setState(to State, ev Event, reason string) {
	from := a.state
	now := a.clock.Now()
	if from != to {
		a.since = now
	}
	a.state, a.reason = to, reason
	if to == Starting || to == Running {
		a.waiting = ""
	}
	switch {
	case to == Starting && a.boot.Started.IsZero():
		a.boot.Started = now
	case to.Up() && a.boot.Ready.IsZero():
		a.boot.Ready = now
	}
	a.history = append(a.history, TransitionRecord{Time: now, From: from.String(), To: to.String(), Event: ev.Kind.String(), Reason: reason})
	if len(a.history) > historyLen {
		a.history = a.history[len(a.history)-historyLen:]
	}
	lvl := zerolog.InfoLevel
	switch to {
	case Failed:
		lvl = zerolog.ErrorLevel
	case Backoff:
		lvl = zerolog.WarnLevel
	}
	e := a.log.WithLevel(lvl).Str("from", from.String()).Str("to", to.String()).Str("event", ev.Kind.String())
	if a.inst != nil {
		e = e.Int("pid", a.inst.Pid())
	}
	if ev.Kind == EvExited {
		e = e.Int("exit_code", ev.Exit.Code)
		if ev.Exit.Signal != 0 {
			e = e.Str("signal", ev.Exit.Signal.String())
		}
	}
	if to == Backoff || to == Starting {
		e = e.Int("attempt", a.memo.Attempt+1)
	}
	e.Msg(to.String() + ": " + reason)
	if a.emit != nil {
		rec := EventRecord{Time: now, Svc: a.def.Name, From: from.String(), To: to.String(), Event: ev.Kind.String(), Reason: reason}
		if a.inst != nil {
			rec.Pid = a.inst.Pid()
		}
		a.emit(rec)
	}
	a.publish()
}

func (a *actor) do(act Action) {
	switch act.Kind {
	case ActLaunch:
		a.launch()
	case ActSignal:
		if a.inst != nil {
			if err := a.inst.Signal(act.Signal); err != nil && !errors.Is(err, container.ErrNotRunning) {
				a.log.Warn().Err(err).Msg("send stop signal")
			}
		}
	case ActKill:
		if a.inst != nil {
			if err := a.inst.Kill(); err != nil {
				a.log.Warn().Err(err).Msg("kill cgroup")
			}
		}
	case ActArmTimer:
		a.armTimer(act.Timer, act.Delay)
	case ActCancelTimer:
		a.stopTimer()
	case ActArmWatchdog:
		a.armWatchdog()
	case ActCancelWatchdog:
		a.stopWatchdog()
	case ActReload:
		if inst := a.inst; inst != nil {
			// A reload command may take a while: never block the actor.
			go func() {
				if err := inst.Reload(); err != nil {
					a.log.Warn().Err(err).Msg("reload")
				}
			}()
		}
	case ActCleanup:
		if a.inst != nil {
			a.inst.Cleanup()
			a.inst = nil
		}
	}
}

func (a *actor) armTimer(kind TimerKind, d time.Duration) {
	a.stopTimer()
	a.timerGen++
	gen := a.timerGen
	a.timerFor = kind
	a.deadline = a.clock.Now().Add(d)
	a.timer = a.clock.AfterFunc(d, func() { a.send(actorMsg{timer: true, gen: gen}) })
}

// armWatchdog (re)starts the service watchdog's deadline.
func (a *actor) armWatchdog() {
	a.stopWatchdog()
	if a.wdInterval <= 0 {
		return
	}
	a.wdGen++
	gen := a.wdGen
	a.wdTimer = a.clock.AfterFunc(a.wdInterval, func() { a.send(actorMsg{timer: true, watchdog: true, gen: gen}) })
}

func (a *actor) stopWatchdog() {
	if a.wdTimer != nil {
		a.wdTimer.Stop()
		a.wdTimer = nil
	}
	a.wdGen++
}

func (a *actor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	a.timerGen++ // a firing already queued is now stale
}

func (a *actor) launch() {
	a.instGen++
	gen := a.instGen
	a.launches++
	a.status = ""
	a.wdInterval = a.def.Watchdog
	h := Hooks{
		OnExit: func(e container.Exit) {
			// Never drop an exit: this blocks its own goroutine if the inbox
			// is full, not the reaper.
			a.send(actorMsg{ev: Event{Kind: EvExited, Exit: e}, gen: gen})
		},
		OnNotify: func(m notify.Message, release func()) {
			msg := actorMsg{notify: &m, gen: gen, release: release}
			if release != nil {
				if !a.send(msg) { // a barrier must not be lost
					release()
				}
				return
			}
			select {
			case a.inbox <- msg:
			default:
				// A flood of datagrams must not grow memory or block; the
				// socket's read rate and buffer are the bound, this the overflow.
				a.dropped.Add(1)
			}
		},
		OnOutput: func(t time.Time, text string, partial bool) {
			// The console gets what the log keeps: a line the rate limit
			// dropped must not flood the console (and its disk) instead.
			if a.logs.Line(t, text, partial) && a.output != nil {
				a.output(a.def.Name, text, partial)
			}
		},
	}
	inst, err := a.rt.Start(a.def, h)
	if err != nil {
		a.log.Debug().Err(err).Msg("launch failed")
		_ = a.event(Event{Kind: EvSetupFailed, Err: err})
		return
	}
	a.inst = inst
	if d := inst.Degraded(); len(d) > 0 {
		a.log.Warn().Strs("degraded", d).Msg("running DEGRADED (allow_degraded): " + strings.Join(d, "; "))
	}
	_ = a.event(Event{Kind: EvExec})
}

func (a *actor) publish() {
	s := &Snapshot{
		Name: a.def.Name, State: a.state, Since: a.since,
		Restarts: a.restarts, LastExit: a.lastExit, Reason: a.reason,
		Status: a.status, Notify: a.def.Notify, Waiting: a.waiting,
		History: append([]TransitionRecord(nil), a.history...),
		Exits:   a.exits, ExitCode: a.exitCode, ExitSignal: a.exitSignal,
		OOMKills: a.oomKills, WatchdogTimeouts: a.wdTimeouts, Boot: a.boot,
		Requires: a.def.Requires, After: a.def.After,
	}
	if a.def.Net.Address.IsValid() {
		s.Address = a.def.Net.Address.String()
	}
	if a.inst != nil {
		s.Pid = a.inst.Pid()
		s.Cgroup = a.inst.CgroupPath()
		s.Degraded = a.inst.Degraded()
		s.inst = a.inst
	}
	a.snap.Store(s)
	if a.changed != nil {
		a.changed()
	}
}

// LogLine is one line of a service's output.
type LogLine = logring.Line
