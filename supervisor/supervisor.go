package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor/config"
)

// Errors of operator requests.
var (
	ErrUnknownService = errors.New("no such service")
	ErrNotRunning     = errors.New("service is not running")
)

// Options configure a Supervisor.
type Options struct {
	Runtime Runtime
	Clock   Clock // nil = RealClock
	Log     zerolog.Logger
	// Output receives every line a service prints (for the console).
	Output func(svc, text string, partial bool)
	// Logs keeps every service's lines (nil: rings in RAM only).
	Logs *Logs
	// Held services are not started by the scheduler, with the reason
	// (safe mode); an operator may still start them.
	Held map[string]string
}

// graph is one configuration's services: replaced as a whole by a reload
// (copy on write), so readers load it once and never lock.
type graph struct {
	actors   map[string]*actor
	order    []string // dependencies before dependants
	deps     map[string][]string
	requires map[string][]string
	disabled []config.Disabled
	global   config.Global
}

// Supervisor runs the services of one configuration: one actor per
// service, and a scheduler that starts each one once what it requires is
// up, and stops them in reverse order at shutdown. Reload replaces the
// configuration while it runs.
type Supervisor struct {
	log    zerolog.Logger
	clock  Clock
	env    actorEnv
	g      atomic.Pointer[graph]
	events *eventFeed
	logs   *Logs
	booted time.Time

	changed chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup

	// waitCh is closed (and replaced) on every change: Wait and Shutdown
	// sleep on it instead of polling.
	waitMu sync.Mutex
	waitCh chan struct{}

	// reloadMu serializes reloads, and a shutdown with a reload.
	reloadMu sync.Mutex

	mu           sync.Mutex
	started      map[string]bool // start already sent by the scheduler
	held         map[string]bool // stopped by an operator: do not auto-start
	replacing    map[string]bool // being stopped by a reload: do not start
	shuttingDown bool
	running      bool // Run was called
}

// New builds the actors. Run starts them.
func New(cfg *config.Config, o Options) *Supervisor {
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Logs == nil {
		o.Logs = NewLogs(LogOptions{Log: o.Log})
	}
	s := &Supervisor{
		log:       o.Log,
		clock:     o.Clock,
		events:    newEventFeed(1024),
		logs:      o.Logs,
		booted:    o.Clock.Now(),
		changed:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		started:   map[string]bool{},
		held:      map[string]bool{},
		replacing: map[string]bool{},
		waitCh:    make(chan struct{}),
	}
	s.env = actorEnv{rt: o.Runtime, clock: o.Clock, log: o.Log, output: o.Output, changed: s.poke, emit: s.events.add, logs: o.Logs}
	g := &graph{actors: map[string]*actor{}, disabled: cfg.Disabled, global: cfg.Global}
	for _, def := range cfg.Services {
		g.actors[def.Name] = newActor(def, s.env)
	}
	g.link(cfg.Services)
	for name, why := range o.Held {
		if a, ok := g.actors[name]; ok {
			s.held[name] = true
			a.waiting = why
			a.publish()
		}
	}
	s.g.Store(g)
	return s
}

// link computes the dependency maps and the start order of the actors.
func (g *graph) link(defs []*config.Service) {
	g.deps, g.requires = map[string][]string{}, map[string][]string{}
	for _, def := range defs {
		g.requires[def.Name] = def.Requires
		all := append(slices.Clone(def.Requires), def.After...)
		slices.Sort(all)
		g.deps[def.Name] = slices.Compact(all)
	}
	g.order = topoOrder(g.deps)
}

func (s *Supervisor) graph() *graph { return s.g.Load() }

// Booted is when the supervisor was created: the start of its boot
// timeline.
func (s *Supervisor) Booted() time.Time { return s.booted }

// LogStreams is every stream's ring and sinks.
func (s *Supervisor) LogStreams() *Logs { return s.logs }

// topoOrder orders names so dependencies come first (config has already
// rejected cycles); ties are broken by name for stable output.
func topoOrder(deps map[string][]string) []string {
	var names []string
	for n := range deps {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, d := range deps[n] {
			if _, ok := deps[d]; ok {
				visit(d)
			}
		}
		out = append(out, n)
	}
	for _, n := range names {
		visit(n)
	}
	return out
}

func (s *Supervisor) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
	s.waitMu.Lock()
	close(s.waitCh)
	s.waitCh = make(chan struct{})
	s.waitMu.Unlock()
}

// changes returns a channel closed at the next change of any service.
func (s *Supervisor) changes() <-chan struct{} {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	return s.waitCh
}

// Run starts the actors and the scheduler; it returns at once.
func (s *Supervisor) Run() {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	for _, a := range s.graph().actors {
		s.spawn(a)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.schedule() }()
	s.poke()
}

// spawn starts an actor's goroutine; Close (or retire) stops it.
func (s *Supervisor) spawn(a *actor) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); a.run(s.done) }()
}

// Close stops the actors' goroutines (after Shutdown).
func (s *Supervisor) Close() {
	close(s.done)
	s.wg.Wait()
}

func (s *Supervisor) schedule() {
	for {
		select {
		case <-s.done:
			return
		case <-s.changed:
			s.startReady()
		}
	}
}

// startReady sends Start to every service whose dependencies are
// satisfied: each service it requires is up (running, or a finished
// one-shot), and each service it is only ordered after has settled (up,
// failed, backing off, or not going to start).
func (s *Supervisor) startReady() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown {
		return
	}
	g := s.graph()
	for _, name := range g.order {
		if s.started[name] || s.held[name] || s.replacing[name] {
			continue
		}
		var waiting []string
		for _, d := range g.deps[name] {
			da, ok := g.actors[d]
			if !ok {
				continue // a disabled "after" target: ordering against nothing
			}
			st := da.snap.Load().State
			required := slices.Contains(g.requires[name], d)
			switch {
			case st.Up():
			case required && st == Failed:
				waiting = append(waiting, d+" (failed)")
			case required:
				waiting = append(waiting, d)
			case st == Starting || (st == Stopped && !s.held[d]):
				// Stopped and not held: not started yet, or its Start is
				// still on the way to its actor.
				waiting = append(waiting, d)
			}
		}
		a := g.actors[name]
		if len(waiting) > 0 {
			why := "waiting for " + strings.Join(waiting, ", ")
			if a.snap.Load().Waiting != why {
				go a.setWaiting(why)
			}
			continue
		}
		s.started[name] = true
		go a.post(EvStart)
	}
}

// Names returns the services in start order.
func (s *Supervisor) Names() []string { return slices.Clone(s.graph().order) }

// Disabled returns the services config disabled, with reasons.
func (s *Supervisor) Disabled() []config.Disabled { return slices.Clone(s.graph().disabled) }

// Status returns the newest snapshot of every service, in start order.
func (s *Supervisor) Status() []Snapshot {
	g := s.graph()
	out := make([]Snapshot, 0, len(g.order))
	for _, n := range g.order {
		out = append(out, *g.actors[n].snap.Load())
	}
	return out
}

// Service returns one service's snapshot.
func (s *Supervisor) Service(name string) (Snapshot, error) {
	a, ok := s.graph().actors[name]
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: %s", ErrUnknownService, name)
	}
	return *a.snap.Load(), nil
}

// Logs returns up to n of the newest lines of a stream: a service (also
// one a reload removed: its lines are kept), or corral's own.
func (s *Supervisor) Logs(name string, n int) ([]LogLine, error) {
	st, ok := s.logs.Get(name)
	if !ok {
		if _, known := s.graph().actors[name]; !known {
			return nil, fmt.Errorf("%w: %s", ErrUnknownService, name)
		}
		return nil, nil
	}
	return st.Ring().Tail(n), nil
}

// Request asks a service to start, stop, restart or reload and waits for the
// state machine's answer (not for the service to get there).
//
// As with systemd's Requires=, a stop also stops the services that
// require this one (they are held until started again), and a start also
// starts what this one requires, then this one once those are up. After=
// only orders the boot.
func (s *Supervisor) Request(name string, kind EventKind) error {
	g := s.graph()
	a, ok := g.actors[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownService, name)
	}
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		return errors.New("shutting down")
	}
	switch kind {
	case EvStop:
		set := map[string]bool{name: true}
		running := false
		for _, r := range g.requirers(name) {
			s.held[r] = true
			if st := g.actors[r].snap.Load().State; st != Stopped && st != Failed && st != Done {
				set[r], running = true, true
			}
		}
		if running {
			// Requirers first, then this one: in the background, in order.
			s.held[name] = true
			s.mu.Unlock()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), s.StopBudget())
				defer cancel()
				_ = s.stopSet(ctx, g, set)
			}()
			return nil
		}
		wasHeld := s.held[name]
		s.held[name] = true
		if st := a.snap.Load().State; st == Stopped && !s.started[name] && !wasHeld {
			// Not started yet (waiting for what it requires): it stays so.
			s.mu.Unlock()
			go a.setWaiting("stopped by an operator before it started")
			return nil
		}
	case EvStart:
		if st := a.snap.Load().State; st.Up() || st == Starting {
			s.mu.Unlock()
			return &TransitionError{From: st, Event: kind, Msg: "already " + st.String()}
		}
		pending := false
		for _, d := range g.requirements(name) {
			delete(s.held, d)
			if st := g.actors[d].snap.Load().State; !st.Up() {
				pending = true
				if st != Starting && st != Backoff && st != Reloading && st != Stopping {
					s.started[d] = false
				}
			}
		}
		delete(s.held, name)
		if pending {
			// The scheduler starts it once what it requires is up.
			s.started[name] = false
			s.mu.Unlock()
			s.poke()
			return nil
		}
		s.started[name] = true
	case EvRestart:
		delete(s.held, name)
		s.started[name] = true
	}
	s.mu.Unlock()
	return a.request(kind)
}

// requirers returns every service that requires name, directly or not,
// dependants first.
func (g *graph) requirers(name string) []string {
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		for m, reqs := range g.requires {
			if slices.Contains(reqs, n) && !seen[m] {
				seen[m] = true
				visit(m)
				out = append(out, m)
			}
		}
	}
	visit(name)
	return out
}

// requirements returns every service name requires, directly or not.
func (g *graph) requirements(name string) []string {
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		for _, d := range g.requires[n] {
			if _, ok := g.actors[d]; ok && !seen[d] {
				seen[d] = true
				visit(d)
				out = append(out, d)
			}
		}
	}
	visit(name)
	return out
}

// Kill sends a signal to a service's main process (as `systemctl kill
// --kill-whom=main`). What follows is the state machine's business: an
// exit, a restart per policy.
func (s *Supervisor) Kill(name string, sig unix.Signal) error {
	a, ok := s.graph().actors[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownService, name)
	}
	if err := a.kill(sig); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	return nil
}

// Wait blocks until cond holds for the snapshots, or ctx ends.
func (s *Supervisor) Wait(ctx context.Context, cond func([]Snapshot) bool) error {
	for {
		ch := s.changes()
		if cond(s.Status()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Ping checks that every actor still handles its inbox: the part of "PID
// 1 is healthy" a hardware watchdog can ask about.
func (s *Supervisor) Ping(ctx context.Context) error {
	g := s.graph()
	for _, n := range g.order {
		reply := make(chan error, 1)
		select {
		case g.actors[n].inbox <- actorMsg{ping: true, reply: reply}:
		case <-ctx.Done():
			return fmt.Errorf("%s: inbox full: %w", n, ctx.Err())
		}
		select {
		case <-reply:
		case <-ctx.Done():
			return fmt.Errorf("%s does not answer: %w", n, ctx.Err())
		}
	}
	return nil
}

// Shutdown stops every service in reverse dependency order: a service is
// stopped once everything that depends on it is down. Services still
// running when ctx ends are killed. It returns when all are down.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shuttingDown = true
	s.mu.Unlock()
	// A reload under way finishes first (its stops are bounded too).
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	g := s.graph()
	all := map[string]bool{}
	for _, n := range g.order {
		all[n] = true
	}
	return s.stopSet(ctx, g, all)
}

// stopSet stops the services in set, each once everything in set that
// depends on it is down. What is still up when ctx ends is killed.
func (s *Supervisor) stopSet(ctx context.Context, g *graph, set map[string]bool) error {
	down := func(n string) bool {
		st := g.actors[n].snap.Load().State
		return st == Stopped || st == Failed || st == Done
	}
	dependants := map[string][]string{}
	for n, ds := range g.deps {
		for _, d := range ds {
			if set[n] {
				dependants[d] = append(dependants[d], n)
			}
		}
	}
	asked := map[string]bool{}
	for {
		ch := s.changes()
		allDown := true
		for _, n := range g.order {
			if !set[n] || down(n) {
				continue
			}
			allDown = false
			if asked[n] {
				continue
			}
			// Backing off: not running, nothing to order.
			ready := g.actors[n].snap.Load().State == Backoff
			if !ready {
				ready = !slices.ContainsFunc(dependants[n], func(d string) bool { return !down(d) })
			}
			if ready {
				asked[n] = true
				go g.actors[n].post(EvStop)
			}
		}
		if allDown {
			return nil
		}
		select {
		case <-ctx.Done():
			return s.killRemaining(g, set)
		case <-ch:
		}
	}
}

// killRemaining kills what is still up when the shutdown deadline passed
// and waits (briefly) for the exits, so cgroups are cleaned up too.
func (s *Supervisor) killRemaining(g *graph, set map[string]bool) error {
	var killed []string
	for _, n := range g.order {
		if !set[n] {
			continue
		}
		a := g.actors[n]
		if st := a.snap.Load().State; st != Stopped && st != Failed && st != Done {
			killed = append(killed, n)
			go func() { _ = a.kill(unix.SIGKILL); a.post(EvStop) }()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.Wait(ctx, func([]Snapshot) bool {
		for n := range set {
			if st := g.actors[n].snap.Load().State; st != Stopped && st != Failed && st != Done && st != Backoff {
				return false
			}
		}
		return true
	})
	return fmt.Errorf("shutdown deadline passed: killed %s", strings.Join(killed, ", "))
}

// StopBudget is how long an orderly shutdown may take: the longest chain
// of stop timeouts through the dependency graph (a service is stopped only
// after everything depending on it is down), plus a margin.
func (s *Supervisor) StopBudget() time.Duration {
	g := s.graph()
	memo := map[string]time.Duration{}
	var longest func(string) time.Duration
	longest = func(n string) time.Duration {
		if d, ok := memo[n]; ok {
			return d
		}
		memo[n] = 0 // config has rejected cycles; this only guards
		var worst time.Duration
		for m, ds := range g.deps {
			if slices.Contains(ds, n) {
				worst = max(worst, longest(m))
			}
		}
		d := worst + g.actors[n].def.StopTimeout
		memo[n] = d
		return d
	}
	var total time.Duration
	for _, n := range g.order {
		total = max(total, longest(n))
	}
	return total + 5*time.Second
}
