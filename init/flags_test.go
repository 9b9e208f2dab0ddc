package main

import (
	"strings"
	"testing"
)

func TestParseBootFlagsSkipsOnlyWhatIsBad(t *testing.T) {
	f, bad := parseBootFlags([]string{"--bogus", "--config", "/x", "splash", "--log-format=json", "--cgroup-prefix", "p", "--state-dir"})
	if f.configDir != "/x" || f.logFormat != "json" || f.cgPrefix != "p" || f.stateDir != "/run/corral" {
		t.Errorf("got %+v", f)
	}
	got := strings.Join(bad, "; ")
	for _, want := range []string{`unknown flag "--bogus"`, `argument "splash"`, `without a value "--state-dir"`} {
		if !strings.Contains(got, want) {
			t.Errorf("bad = %q, missing %s", got, want)
		}
	}
	if f, bad := parseBootFlags([]string{"boot", "--config=/etc/x"}); f.configDir != "/etc/x" || len(bad) != 0 {
		t.Errorf("boot --config=: %+v %v", f, bad)
	}
}
