package supervisor

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/corral-init/corral/supervisor/config"
)

// Plan is what a config reload does.
type Plan struct {
	// Start are services the new configuration adds.
	Start []string `json:"start,omitempty"`
	// Restart are services whose definition changed: stopped, replaced,
	// started again.
	Restart []string `json:"restart,omitempty"`
	// Held are services whose definition changed that an operator has
	// stopped: replaced, and still stopped (`corral start` starts them).
	Held []string `json:"held,omitempty"`
	// Stop are services the new configuration no longer has.
	Stop []string `json:"stop,omitempty"`
	// Keep are services that stay as they are.
	Keep []string `json:"keep,omitempty"`
	// Notes are changes a reload does not apply (corral.toml settings used
	// only at boot).
	Notes []string `json:"notes,omitempty"`
}

// Empty reports whether the plan changes no service.
func (p Plan) Empty() bool { return len(p.Start)+len(p.Restart)+len(p.Held)+len(p.Stop) == 0 }

// ErrInvalidConfig rejects a reload: the configuration has problems.
var ErrInvalidConfig = errors.New("the new configuration has problems; nothing was changed")

// ReloadError is a rejected reload, with every problem of the new
// configuration.
type ReloadError struct {
	Problems []string
}

func (e *ReloadError) Error() string {
	return fmt.Sprintf("%v (%s): %s", ErrInvalidConfig, count(len(e.Problems), "problem"), strings.Join(e.Problems, "; "))
}

func (e *ReloadError) Unwrap() error { return ErrInvalidConfig }

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// PlanReload compares a configuration with the running one.
func (s *Supervisor) PlanReload(cfg *config.Config) (Plan, error) {
	if len(cfg.Problems) > 0 || len(cfg.Disabled) > 0 {
		e := &ReloadError{}
		for _, p := range cfg.Problems {
			e.Problems = append(e.Problems, p.Error())
		}
		if len(e.Problems) == 0 {
			for _, d := range cfg.Disabled {
				e.Problems = append(e.Problems, d.Name+": "+d.Reason)
			}
		}
		return Plan{}, e
	}
	p := planFor(s.graph(), cfg)
	s.mu.Lock()
	var restart []string
	for _, n := range p.Restart {
		if s.held[n] {
			p.Held = append(p.Held, n)
		} else {
			restart = append(restart, n)
		}
	}
	p.Restart = restart
	s.mu.Unlock()
	return p, nil
}

func planFor(g *graph, cfg *config.Config) Plan {
	var p Plan
	seen := map[string]bool{}
	for _, def := range cfg.Services {
		seen[def.Name] = true
		a, ok := g.actors[def.Name]
		switch {
		case !ok:
			p.Start = append(p.Start, def.Name)
		case !reflect.DeepEqual(*a.def, *def):
			p.Restart = append(p.Restart, def.Name)
		default:
			p.Keep = append(p.Keep, def.Name)
		}
	}
	for _, n := range g.order {
		if !seen[n] {
			p.Stop = append(p.Stop, n)
		}
	}
	slices.Sort(p.Start)
	slices.Sort(p.Restart)
	slices.Sort(p.Stop)
	slices.Sort(p.Keep)
	// corral.toml: each top-level setting that changed, by its TOML name.
	ov, nv := reflect.ValueOf(g.global), reflect.ValueOf(cfg.Global)
	for i := 0; i < ov.NumField(); i++ {
		f := ov.Type().Field(i)
		if f.Name == "File" {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			p.Notes = append(p.Notes, fmt.Sprintf("corral.toml: %s changed: it applies at the next start of corral", tomlName(f.Name)))
		}
	}
	return p
}

// tomlName is a Global field's key in corral.toml.
func tomlName(field string) string {
	if field == "API" {
		return "[api]"
	}
	n := strings.ToLower(field)
	switch n {
	case "hostname", "modules":
		return n
	}
	return "[" + n + "]"
}

// Reload switches to a new configuration. A configuration with any
// problem is rejected as a whole (a *ReloadError) and nothing changes.
// Otherwise: services that are gone and services whose definition changed
// are stopped, in reverse dependency order (of the running graph), and
// their actors retired; then the new graph is installed, with a fresh
// actor for each changed or added service, and the scheduler starts
// those in dependency order. Unchanged services are not touched: a
// restart of a changed service does not restart what requires it. A
// service an operator had stopped stays stopped.
func (s *Supervisor) Reload(ctx context.Context, cfg *config.Config) (Plan, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	plan, err := s.PlanReload(cfg)
	if err != nil {
		return Plan{}, err
	}
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		return Plan{}, errors.New("shutting down")
	}
	old := s.graph()
	set := map[string]bool{}
	for _, n := range slices.Concat(plan.Stop, plan.Restart, plan.Held) {
		set[n] = true
		s.replacing[n] = true
	}
	s.mu.Unlock()
	s.log.Info().Strs("start", plan.Start).Strs("restart", plan.Restart).Strs("held", plan.Held).Strs("stop", plan.Stop).
		Int("keep", len(plan.Keep)).Msg("reload: " + plan.Summary())
	var stopErr error
	if len(set) > 0 {
		stopErr = s.stopSet(ctx, old, set)
	}

	g := &graph{actors: map[string]*actor{}, disabled: cfg.Disabled, global: old.global}
	var fresh []*actor
	for _, def := range cfg.Services {
		if a, ok := old.actors[def.Name]; ok && !set[def.Name] {
			g.actors[def.Name] = a
			continue
		}
		a := newActor(def, s.env)
		if prev, ok := old.actors[def.Name]; ok {
			prev.retire()
			// The history goes on; the counters start again.
			a.history = append(slices.Clone(prev.history), TransitionRecord{
				Time: s.clock.Now(), From: prev.state.String(), To: Stopped.String(), Event: "reload", Reason: "definition changed: replaced by a config reload",
			})
			a.publish()
		}
		g.actors[def.Name] = a
		fresh = append(fresh, a)
	}
	for _, n := range plan.Stop {
		old.actors[n].retire()
	}
	g.link(cfg.Services)
	// corral.toml settings other than services apply at the next start;
	// keep the running ones so the next plan still notes them.

	s.mu.Lock()
	s.g.Store(g)
	for n := range set {
		delete(s.replacing, n)
		delete(s.started, n)
	}
	for _, n := range plan.Stop {
		delete(s.held, n)
	}
	running := s.running
	s.mu.Unlock()
	if running {
		for _, a := range fresh {
			s.spawn(a)
		}
	}
	s.poke()
	if stopErr != nil {
		return plan, fmt.Errorf("reload: stopping %s: %w", strings.Join(keys(set), ", "), stopErr)
	}
	return plan, nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Summary is one line for the log and the CLI.
func (p Plan) Summary() string {
	if p.Empty() {
		return "no service changed"
	}
	var parts []string
	add := func(verb string, names []string) {
		if len(names) > 0 {
			parts = append(parts, verb+" "+strings.Join(names, ", "))
		}
	}
	add("start", p.Start)
	add("restart", p.Restart)
	add("update (stopped by an operator: stays stopped)", p.Held)
	add("stop", p.Stop)
	return strings.Join(parts, "; ")
}
