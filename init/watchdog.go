package main

import (
	"fmt"
	"time"

	"github.com/corral-init/corral/supervisor"
)

// petDecision says whether PID 1 may pet the hardware watchdog now: PID 1
// answers (alive is nil), and every critical service is up and has been
// up since the last pet, so a crash loop or a wedged service (whose own
// watchdog keeps restarting it) lets the board reset. Until every critical
// service has been up once, the boot itself is given grace.
func petDecision(alive error, snaps []supervisor.Snapshot, critical map[string]bool, lastPet time.Time, booting bool) (bool, string) {
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
		switch {
		case s.State != supervisor.Running && s.State != supervisor.Reloading:
			return false, fmt.Sprintf("critical service %s is %s", s.Name, s.State)
		case s.Since.After(lastPet):
			return false, fmt.Sprintf("critical service %s was not up since the last pet (up since %s)", s.Name, s.Since.Format("15:04:05.000"))
		}
	}
	return true, ""
}

// allCriticalUp reports whether every critical service is running.
func allCriticalUp(snaps []supervisor.Snapshot, critical map[string]bool) bool {
	for _, s := range snaps {
		if critical[s.Name] && s.State != supervisor.Running && s.State != supervisor.Reloading {
			return false
		}
	}
	return true
}
