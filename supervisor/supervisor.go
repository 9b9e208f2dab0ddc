package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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
}

// Supervisor runs the services of one configuration: one actor per
// service, and a scheduler that starts each one once what it requires is
// up, and stops them in reverse order at shutdown.
type Supervisor struct {
	log      zerolog.Logger
	clock    Clock
	actors   map[string]*actor
	order    []string // dependencies before dependants
	deps     map[string][]string
	requires map[string][]string
	disabled []config.Disabled

	changed chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup

	mu           sync.Mutex
	started      map[string]bool // start already sent by the scheduler
	held         map[string]bool // stopped by an operator: do not auto-start
	shuttingDown bool
}

// New builds the actors. Run starts them.
func New(cfg *config.Config, o Options) *Supervisor {
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	s := &Supervisor{
		log:      o.Log,
		clock:    o.Clock,
		actors:   map[string]*actor{},
		deps:     map[string][]string{},
		requires: map[string][]string{},
		disabled: cfg.Disabled,
		changed:  make(chan struct{}, 1),
		done:     make(chan struct{}),
		started:  map[string]bool{},
		held:     map[string]bool{},
	}
	for _, def := range cfg.Services {
		s.actors[def.Name] = newActor(def, o.Runtime, o.Clock, o.Log, o.Output, s.poke)
		s.requires[def.Name] = def.Requires
		all := append(slices.Clone(def.Requires), def.After...)
		slices.Sort(all)
		s.deps[def.Name] = slices.Compact(all)
	}
	s.order = topoOrder(s.deps)
	return s
}

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
}

// Run starts the actors and the scheduler; it returns at once.
func (s *Supervisor) Run() {
	for _, a := range s.actors {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); a.run(s.done) }()
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.schedule() }()
	s.poke()
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
	for _, name := range s.order {
		if s.started[name] || s.held[name] {
			continue
		}
		var waiting []string
		for _, d := range s.deps[name] {
			da, ok := s.actors[d]
			if !ok {
				continue // a disabled "after" target: ordering against nothing
			}
			st := da.snap.Load().State
			required := slices.Contains(s.requires[name], d)
			switch {
			case st.Up():
			case required && st == Failed:
				waiting = append(waiting, d+" (failed)")
			case required:
				waiting = append(waiting, d)
			case st == Starting || (st == Stopped && !s.started[d] && !s.held[d]):
				waiting = append(waiting, d)
			}
		}
		a := s.actors[name]
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
func (s *Supervisor) Names() []string { return slices.Clone(s.order) }

// Disabled returns the services config disabled, with reasons.
func (s *Supervisor) Disabled() []config.Disabled { return slices.Clone(s.disabled) }

// Status returns the newest snapshot of every service, in start order.
func (s *Supervisor) Status() []Snapshot {
	out := make([]Snapshot, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, *s.actors[n].snap.Load())
	}
	return out
}

// Service returns one service's snapshot.
func (s *Supervisor) Service(name string) (Snapshot, error) {
	a, ok := s.actors[name]
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: %s", ErrUnknownService, name)
	}
	return *a.snap.Load(), nil
}

// Logs returns up to n of the newest output lines of a service.
func (s *Supervisor) Logs(name string, n int) ([]LogLine, error) {
	a, ok := s.actors[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownService, name)
	}
	return a.logs.Tail(n), nil
}

// Request asks a service to start, stop or restart and waits for the
// state machine's answer (not for the service to get there).
func (s *Supervisor) Request(name string, kind EventKind) error {
	a, ok := s.actors[name]
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
		s.held[name] = true
	case EvStart, EvRestart:
		delete(s.held, name)
		s.started[name] = true
	}
	s.mu.Unlock()
	return a.request(kind)
}

// Kill sends a signal to a service's main process (as `systemctl kill
// --kill-whom=main`). What follows is the state machine's business: an
// exit, a restart per policy.
func (s *Supervisor) Kill(name string, sig unix.Signal) error {
	a, ok := s.actors[name]
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
		if cond(s.Status()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Shutdown stops every service in reverse dependency order: a service is
// stopped once everything that depends on it is down. Services still
// running when ctx ends are killed. It returns when all are down.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shuttingDown = true
	s.mu.Unlock()
	dependants := map[string][]string{}
	for n, ds := range s.deps {
		for _, d := range ds {
			dependants[d] = append(dependants[d], n)
		}
	}
	asked := map[string]bool{}
	for {
		allDown := true
		for _, n := range s.order {
			a := s.actors[n]
			st := a.snap.Load().State
			if st == Stopped || st == Failed || st == Done {
				continue
			}
			allDown = false
			if asked[n] {
				continue
			}
			ready := st == Backoff // not running: nothing to order
			if !ready {
				ready = true
				for _, d := range dependants[n] {
					if ds := s.actors[d].snap.Load().State; !(ds == Stopped || ds == Failed || ds == Done) {
						ready = false
						break
					}
				}
			}
			if ready {
				asked[n] = true
				go a.post(EvStop)
			}
		}
		if allDown {
			return nil
		}
		select {
		case <-ctx.Done():
			for _, n := range s.order {
				if a := s.actors[n]; !a.snap.Load().State.Down() {
					go a.post(EvStop)
				}
			}
			return fmt.Errorf("shutdown: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
