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

func TestCommandFirstAfterFlags(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"--json status", "status --json"},
		{"--socket /x status web", "status --socket /x web"},
		{"--socket=/x --json logs -f", "logs --socket=/x --json -f"},
		{"status --json", "status --json"},
		{"--config /etc/corral", "--config /etc/corral"},
		{"--bogus splash status", "status --bogus splash"}, // status then refuses --bogus
		{"--json splash", "--json splash"},                 // no command: the supervisor refuses it
		{"-- status", "-- status"},
		{"", ""},
	} {
		if got := strings.Join(commandFirst(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
