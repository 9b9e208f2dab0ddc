package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/corral-init/corral/supervisor"
)

func TestPetDecision(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	lastPet := now.Add(-5 * time.Second)
	crit := map[string]bool{"db": true}
	up := func(name string, since time.Time) supervisor.Snapshot {
		return supervisor.Snapshot{Name: name, State: supervisor.Running, Since: since}
	}
	tests := []struct {
		name    string
		alive   error
		snaps   []supervisor.Snapshot
		booting bool
		want    bool
		why     string
	}{
		{"healthy", nil, []supervisor.Snapshot{up("db", now.Add(-time.Hour))}, false, true, ""},
		{"pid 1 stuck", errors.New("db does not answer"), []supervisor.Snapshot{up("db", now.Add(-time.Hour))}, false, false, "PID 1 is not healthy"},
		{"critical down", nil, []supervisor.Snapshot{{Name: "db", State: supervisor.Backoff}}, false, false, "critical service db is backoff"},
		{"critical restarted since the last pet", nil, []supervisor.Snapshot{up("db", now.Add(-time.Second))}, false, false, "was not up since the last pet"},
		{"a non-critical service may fail", nil, []supervisor.Snapshot{up("db", now.Add(-time.Hour)), {Name: "web", State: supervisor.Failed}}, false, true, ""},
		{"boot grace", nil, []supervisor.Snapshot{{Name: "db", State: supervisor.Starting}}, true, true, ""},
		{"boot grace needs PID 1 alive", errors.New("stuck"), nil, true, false, "PID 1 is not healthy"},
	}
	for _, tt := range tests {
		ok, why := petDecision(tt.alive, tt.snaps, crit, lastPet, tt.booting)
		if ok != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("%s: got %v %q, want %v %q", tt.name, ok, why, tt.want, tt.why)
		}
	}
	if allCriticalUp([]supervisor.Snapshot{{Name: "db", State: supervisor.Starting}}, crit) {
		t.Error("db starting counts as up")
	}
}
