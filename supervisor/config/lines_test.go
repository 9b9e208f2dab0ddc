package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestScanKeys(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // "path line", in file order
	}{
		{
			name: "top level and tables",
			text: `a = 1
# comment = 2
b = "x" # trailing comment

[limits]
memory = "64M"
  cpu = 0.5
[network]
mode = "none"
`,
			want: []string{"a 1", "b 3", "limits 5", "limits.memory 6", "limits.cpu 7", "network 8", "network.mode 9"},
		},
		{
			name: "dotted and quoted keys",
			text: `limits.memory = "1M"
env."MY VAR" = "x"
env . 'lit.eral' = "y"
"quoted" = 1
`,
			want: []string{"limits 1", "limits.memory 1", "env 2", `env."MY VAR" 2`, "env 3", `env."lit.eral" 3`, "quoted 4"},
		},
		{
			name: "arrays of tables",
			text: `[container]
init = true

[[container.mounts]]
target = "/a"

[[container.mounts]]
type = "tmpfs"
target = "/b"
[container.mounts.extra]
x = 1
[[container.mounts.sub]]
y = 2
`,
			want: []string{
				"container 1", "container.init 2",
				"container 4", "container.mounts 4", "container.mounts[0] 4", "container.mounts[0].target 5",
				"container 7", "container.mounts 7", "container.mounts[1] 7", "container.mounts[1].type 8", "container.mounts[1].target 9",
				"container 10", "container.mounts[1] 10", "container.mounts[1].extra 10", "container.mounts[1].extra.x 11",
				"container 12", "container.mounts[1] 12", "container.mounts[1].sub 12", "container.mounts[1].sub[0] 12", "container.mounts[1].sub[0].y 13",
			},
		},
		{
			name: "multi-line strings",
			text: `a = """
one "quoted" \"""
two
"""
b = '''
x = "not a key" \''
'''
c = """ends with quotes"""""
d = 'single'
e = "esc \" # not a comment"
f = 1
`,
			want: []string{"a 1", "b 5", "c 8", "d 9", "e 10", "f 11"},
		},
		{
			name: "multi-line arrays",
			text: `requires = [
  "a", # comment ]
  "b",

  "c",
]
after = ["x", "y"]
nested = [[1, 2], [
  3]]
mounts = [{ target = "/a" }, { type = "tmpfs",
  target = "/b" }]
n = 1
`,
			want: []string{
				"requires 1", "requires[0] 2", "requires[1] 3", "requires[2] 5",
				"after 7", "after[0] 7", "after[1] 7",
				"nested 8", "nested[0] 8", "nested[0][0] 8", "nested[0][1] 8", "nested[1] 8", "nested[1][0] 9",
				"mounts 10", "mounts[0] 10", "mounts[0].target 10", "mounts[1] 10", "mounts[1].type 10", "mounts[1].target 11",
				"n 12",
			},
		},
		{
			name: "inline tables spanning lines (TOML 1.1)",
			text: `env = {
  A = "1", # comment
  B = { C = "2" },
}
x = 1
`,
			want: []string{"env 1", "env.A 2", "env.B 3", "env.B.C 3", "x 5"},
		},
		{
			name: "dates with a space and CRLF",
			text: "d = 1979-05-27 07:32:00Z\r\ne = 2\r\n",
			want: []string{"d 1", "e 2"},
		},
		{
			name: "garbage does not stop the scan",
			text: "a = \"unterminated\nb = 2\n= 3\n[broken\nc = 4\n",
			want: []string{"a 1", "b 2", "c 5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, kl := range scanKeys(tt.text).all {
				got = append(got, fmt.Sprintf("%s %d", kl.path, kl.line))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("scanKeys\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestKeyLinesLookups(t *testing.T) {
	k := scanKeys(`exec = ["/bin/x"]
[[container.mounts]]
target = "/a"
[[container.mounts]]
type = "bind"
`)
	for path, want := range map[string]int{
		"exec":                       1,
		"exec[0]":                    1,
		"container.mounts[1].type":   5,
		"container.mounts[1].source": 4, // left out: its table's line
		"network.address":            0, // left out, and so is its table
		"":                           0,
	} {
		if got := k.line(path); got != want {
			t.Errorf("line(%q) = %d, want %d", path, got, want)
		}
	}
	for _, tt := range []struct {
		key  string
		line int
		want string
	}{
		{"container.mounts.target", 3, "container.mounts[0].target"},
		{"container.mounts.type", 5, "container.mounts[1].type"},
		{"container.mounts.type", 0, "container.mounts[1].type"},
		{"container.mounts.type", 4, ""},
		{"", 1, ""},
	} {
		if got := k.keyAt(tt.key, tt.line); got != tt.want {
			t.Errorf("keyAt(%q, %d) = %q, want %q", tt.key, tt.line, got, tt.want)
		}
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		path, parent, stripped string
		parts                  []string
	}{
		{"a", "", "a", []string{"a"}},
		{"a.b[0].c", "a.b[0]", "a.b.c", []string{"a", ".b", "[0]", ".c"}},
		{"a[1][2]", "a[1]", "a", []string{"a", "[1]", "[2]"}},
		{`env."x.y[0]"`, "env", `env."x.y[0]"`, []string{"env", `."x.y[0]"`}},
		{`"a b".c`, `"a b"`, `"a b".c`, []string{`"a b"`, ".c"}},
		{"", "", "", nil},
	}
	for _, tt := range tests {
		if got := splitPath(tt.path); !reflect.DeepEqual(got, tt.parts) {
			t.Errorf("splitPath(%q) = %q, want %q", tt.path, got, tt.parts)
		}
		if got := parentPath(tt.path); got != tt.parent {
			t.Errorf("parentPath(%q) = %q, want %q", tt.path, got, tt.parent)
		}
		if got := stripIndexes(tt.path); got != tt.stripped {
			t.Errorf("stripIndexes(%q) = %q, want %q", tt.path, got, tt.stripped)
		}
	}
	if got, want := joinKey(joinKey("", "env"), "MY VAR"), `env."MY VAR"`; got != want {
		t.Errorf("joinKey = %q, want %q", got, want)
	}
	if got := strings.Join([]string{joinKey("", ""), joinKey("a", "b-c_1")}, " "); got != `"" a.b-c_1` {
		t.Errorf("joinKey = %q", got)
	}
}
