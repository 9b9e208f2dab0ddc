package config

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want string
	}{
		{"all", Error{"services/web.toml", 12, "limits.memory", `invalid size "64X"`}, `services/web.toml:12: limits.memory: invalid size "64X"`},
		{"no line", Error{"services/web.toml", 0, "exec", "missing"}, "services/web.toml: exec: missing"},
		{"no key", Error{"services/Web.toml", 0, "", "invalid service name"}, "services/Web.toml: invalid service name"},
		{"line, no key", Error{"corral.toml", 3, "", "expected value"}, "corral.toml:3: expected value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTOMLErrorFormat pins the format of the plain errors BurntSushi/toml
// returns when a value does not fit its Go type. If an upgrade changes it,
// this fails instead of corral quietly losing lines and keys.
func TestTOMLErrorFormat(t *testing.T) {
	var v struct {
		Restart string `toml:"restart"`
		Limits  struct {
			Pids int64 `toml:"pids"`
		} `toml:"limits"`
		Mounts []struct {
			Target string `toml:"target"`
		} `toml:"mounts"`
	}
	tests := []struct {
		name string
		text string
		want Error
	}{
		{"top level", "\nrestart = 1\n", Error{"f.toml", 2, "restart", "incompatible types: TOML value has type int64; destination has type string"}},
		{"in a table", "[limits]\npids = \"x\"\n", Error{"f.toml", 2, "limits.pids", "incompatible types: TOML value has type string; destination has type integer"}},
		{"in an array of tables", "[[mounts]]\ntarget = \"/a\"\n[[mounts]]\ntarget = 1\n", Error{"f.toml", 4, "mounts[1].target", "incompatible types: TOML value has type int64; destination has type string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := toml.Decode(tt.text, &v)
			if err == nil {
				t.Fatal("toml.Decode succeeded")
			}
			if decodeErrorRE().FindStringSubmatch(err.Error()) == nil {
				t.Fatalf("BurntSushi/toml error format changed: %q no longer matches decodeErrorRE", err)
			}
			f := &fileState{file: "f.toml", lines: scanKeys(tt.text)}
			if got := f.tomlError(tt.text, err); *got != tt.want {
				t.Errorf("tomlError(%q)\n got %+v\nwant %+v", err, *got, tt.want)
			}
		})
	}
}

func TestTOMLParseError(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Error
	}{
		{"duplicate key", "a = 1\nb = 2\na = 3\n", Error{"f.toml", 3, "a", "key 'a' has already been defined"}},
		{"duplicate table", "[t]\n[t]\n", Error{"f.toml", 2, "", "key 't' has already been defined"}},
		{"unterminated string", "a = 1\nb = \"x\n", Error{"f.toml", 2, "b", "strings cannot contain newlines"}},
		{"last key elsewhere", "a = 1\n= 2\n", Error{"f.toml", 2, "", "unexpected '=': key name appears blank"}},
		{"at a line end", "hostname = \"x\"\n[network\nsubnet = 1\n", Error{"f.toml", 2, "", `expected '.' or ']' to end table name, but got '\n' instead`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			_, err := toml.Decode(tt.text, &m)
			f := &fileState{file: "f.toml", lines: scanKeys(tt.text)}
			if got := f.tomlError(tt.text, err); *got != tt.want {
				t.Errorf("tomlError(%q)\n got %+v\nwant %+v", err, *got, tt.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"memory", "cpu", "pids"}
	for key, want := range map[string]string{
		"memroy": ` (did you mean "memory"?)`,
		"Memory": ` (did you mean "memory"?)`,
		"mem":    "",
		"cpus":   ` (did you mean "cpu"?)`,
		"pid":    ` (did you mean "pids"?)`,
		"swap":   "",
		"":       "",
	} {
		if got := suggest(key, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", key, got, want)
		}
	}
}
