package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/corral-init/corral/supervisor"
)

// petDecision says whether PID 1 may pet the hardware watchdog now: PID 1
// answers (alive is nil), and every critical service is up and has been
// up since checked (when what allowed the last pet was observed), so a
// crash loop or a wedged service (whose own watchdog keeps restarting it)
// lets the board reset. Until every critical service has been up once,
// the boot itself is given grace.
func petDecision(alive error, snaps []supervisor.Snapshot, critical map[string]bool, checked time.Time, booting bool) (bool, string) {
	if alive != nil {
		return false, "PID 1 is not healthy: " + alive.Error()
	}
	if booting {
		return true, ""
	}
	for _, s := range snaps {
		if !critical[s.Name] {
			continue
		}
		switch up := upSince(s); {
		case !isUp(s.State):
			return false, fmt.Sprintf("critical service %s is %s", s.Name, s.State)
		case up.After(checked):
			return false, fmt.Sprintf("critical service %s was not up since the last pet (up since %s)", s.Name, up.Format("15:04:05.000"))
		}
	}
	return true, ""
}

func isUp(s supervisor.State) bool { return s == supervisor.Running || s == supervisor.Reloading }

// upSince is when s's current up period began: the last transition into
// running or reloading from a state that is neither. A reload (running →
// reloading → running) does not end an up period, though it moves Since.
// If the history no longer reaches back to that transition, its oldest
// entry is the best bound left (later than the truth: a reload storm then
// counts as a restart).
func upSince(s supervisor.Snapshot) time.Time {
	up := func(name string) bool {
		return name == supervisor.Running.String() || name == supervisor.Reloading.String()
	}
	for i := len(s.History) - 1; i >= 0; i-- {
		h := s.History[i]
		switch {
		case !up(h.To):
			return s.Since // not up after all; the caller has seen the state
		case !up(h.From):
			return h.Time
		case i == 0:
			return h.Time
		}
	}
	return s.Since
}

// bootGood says whether the boot counts as good at now: every critical
// service (stable: its name and stable_after) is up, and has been up
// without a restart for its stable_after, the window the restart policy
// also takes to call a run stable. A service that crashes right after
// its exec was "running" for a moment, which is not a good boot. If they
// are all up but not yet for long enough, wait is the time left.
func bootGood(snaps []supervisor.Snapshot, stable map[string]time.Duration, now time.Time) (ok bool, wait time.Duration) {
	for _, s := range snaps {
		window, crit := stable[s.Name]
		if !crit {
			continue
		}
		if !isUp(s.State) {
			return false, 0
		}
		wait = max(wait, upSince(s).Add(window).Sub(now))
	}
	return wait <= 0, max(wait, 0)
}

// criticalState is what bootGood depends on (each critical service's
// state and up period), to wait for a change of it.
func criticalState(snaps []supervisor.Snapshot, stable map[string]time.Duration) string {
	var b strings.Builder
	for _, s := range snaps {
		if _, crit := stable[s.Name]; crit {
			fmt.Fprintf(&b, "%s=%s@%d;", s.Name, s.State, upSince(s).UnixNano())
		}
	}
	return b.String()
}

// allCriticalUp reports whether every critical service is running.
func allCriticalUp(snaps []supervisor.Snapshot, critical map[string]bool) bool {
	for _, s := range snaps {
		if critical[s.Name] && !isUp(s.State) {
			return false
		}
	}
	return true
}

// petter decides, tick by tick, whether the hardware watchdog is petted:
// run feeds it what it observed and when, and tells it when it petted.
// It holds no device and reads no clock.
type petter struct {
	critical map[string]bool
	timeout  time.Duration // the device's: it resets the board this long after the last pet
	interval time.Duration // between ticks
	grace    time.Duration // the longest the boot may take
	armed    time.Time
	booting  bool
	lastPet  time.Time // when the device was last petted (armed, at first)
	checked  time.Time // when what allowed the last pet was observed
}

func newPetter(critical map[string]bool, timeout, interval, grace time.Duration, armed time.Time) *petter {
	return &petter{critical: critical, timeout: timeout, interval: interval, grace: grace,
		armed: armed, booting: true, lastPet: armed, checked: armed}
}

// pingBudget is how long PID 1's actors may take to answer at now: until
// half an interval before the board would reset. An actor that is busy
// launching a container (most of a second under emulation) is slow, not
// hung; only one that does not answer in time is.
func (p *petter) pingBudget(now time.Time) time.Duration {
	return max(p.lastPet.Add(p.timeout-p.interval/2).Sub(now), p.interval/2)
}

// decide says whether to pet, given the services as observed at seen
// (snaps) and PID 1's answer (alive).
func (p *petter) decide(seen time.Time, alive error, snaps []supervisor.Snapshot, shutdown bool) (bool, string) {
	ok, why := petDecision(alive, snaps, p.critical, p.checked, p.booting || shutdown)
	// The grace ends after this decision, not before it: the critical
	// services that came up during the boot did so after the last pet, and
	// that is no restart. This pet covers them; from the next one on they
	// must stay up.
	if p.booting && (allCriticalUp(snaps, p.critical) || seen.Sub(p.armed) > p.grace) {
		p.booting = false
	}
	return ok, why
}

// petted records a pet at at, allowed by what was observed at seen.
func (p *petter) petted(seen, at time.Time) { p.checked, p.lastPet = seen, at }

// resetIn is how long the board has left at now, if nothing pets it.
func (p *petter) resetIn(now time.Time) time.Duration {
	return max(p.lastPet.Add(p.timeout).Sub(now), 0)
}

// watchdogSysfs finds the sysfs directory (under class, normally
// /sys/class/watchdog) of the watchdog device with number major:minor.
// The legacy /dev/watchdog (misc 10:130) is always watchdog0; each
// /dev/watchdogN has its own number in watchdogN/dev.
func watchdogSysfs(class string, major, minor uint32) (string, bool) {
	if major == 10 && minor == 130 {
		d := filepath.Join(class, "watchdog0")
		_, err := os.Stat(d)
		return d, err == nil
	}
	devs, _ := filepath.Glob(filepath.Join(class, "*", "dev"))
	want := fmt.Sprintf("%d:%d", major, minor)
	for _, f := range devs {
		if b, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(b)) == want {
			return filepath.Dir(f), true
		}
	}
	return "", false
}

// sysfsAttr reads one attribute of a sysfs directory ("" if unreadable).
func sysfsAttr(dir, name string) string {
	if dir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
