package config

import (
	"reflect"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "4096", want: 4096},
		{in: "4096B", want: 4096},
		{in: "512K", want: 512 << 10},
		{in: "64M", want: 64 << 20},
		{in: "64MB", want: 64 << 20},
		{in: "64MiB", want: 64 << 20},
		{in: "1G", want: 1 << 30},
		{in: "2T", want: 2 << 40},
		{in: "8388607T", want: 8388607 << 40},
		{in: "64X", wantErr: `invalid size "64X" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "", wantErr: `invalid size "" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "M", wantErr: `invalid size "M" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "64m", wantErr: `invalid size "64m" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "64iB", wantErr: `invalid size "64iB" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "64Mi", wantErr: `invalid size "64Mi" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "1.5G", wantErr: `invalid size "1.5G" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "-1M", wantErr: `invalid size "-1M" (use a number with K, M, G or T, e.g. "64M")`},
		{in: " 64M", wantErr: `invalid size " 64M" (use a number with K, M, G or T, e.g. "64M")`},
		{in: "8388608T", wantErr: `size "8388608T" is too large`},
		{in: "99999999999999999999", wantErr: `size "99999999999999999999" is too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if gotErr := errString(err); gotErr != tt.wantErr || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %q; want %d, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSizeUnmarshalTOML(t *testing.T) {
	tests := []struct {
		name    string
		in      any
		want    size
		wantErr string
	}{
		{name: "string", in: "1K", want: 1024},
		{name: "integer", in: int64(4096), want: 4096},
		{name: "negative", in: int64(-1), wantErr: "negative size -1"},
		{name: "float", in: 1.5, wantErr: `must be a size such as "64M" or a number of bytes, not a float`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got size
			err := got.UnmarshalTOML(tt.in)
			if gotErr := errString(err); gotErr != tt.wantErr || (err == nil && got != tt.want) {
				t.Errorf("UnmarshalTOML(%v) = %d, %q; want %d, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 100: "100", 1024: "1K", 1536: "1536", 1536 << 10: "1536K", 8 << 20: "8M", 3 << 40: "3T"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "100ms", want: 100 * time.Millisecond},
		{in: "5s", want: 5 * time.Second},
		{in: "2m", want: 2 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "5", wantErr: `invalid duration "5" (use a number with a unit: ms, s, m or h, e.g. "500ms" or "10s")`},
		{in: "5x", wantErr: `invalid duration "5x" (use a number with a unit: ms, s, m or h, e.g. "500ms" or "10s")`},
		{in: "", wantErr: `invalid duration "" (use a number with a unit: ms, s, m or h, e.g. "500ms" or "10s")`},
		{in: "5 s", wantErr: `invalid duration "5 s" (use a number with a unit: ms, s, m or h, e.g. "500ms" or "10s")`},
		{in: "-1s", wantErr: `negative duration "-1s"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got duration
			err := got.UnmarshalText([]byte(tt.in))
			if gotErr := errString(err); gotErr != tt.wantErr || (err == nil && time.Duration(got) != tt.want) {
				t.Errorf("UnmarshalText(%q) = %v, %q; want %v, %q", tt.in, time.Duration(got), gotErr, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "plain", in: "/bin/prog -v --x=1", want: []string{"/bin/prog", "-v", "--x=1"}},
		{name: "extra blanks", in: "  /bin/prog \t a\n b  ", want: []string{"/bin/prog", "a", "b"}},
		{name: "empty", in: "", want: nil},
		{name: "blank", in: " \t\n", want: nil},
		{name: "single quotes", in: `sh -c 'echo "$HOME" | cat; exit 3'`, want: []string{"sh", "-c", `echo "$HOME" | cat; exit 3`}},
		{name: "single quotes keep backslashes", in: `a 'b\n\'`, want: []string{"a", `b\n\`}},
		{name: "double quotes", in: `a "b c" "d'e"`, want: []string{"a", "b c", "d'e"}},
		{name: "double quote escapes", in: `a "\$x \"q\" \\ \n \a"`, want: []string{"a", `$x "q" \ \n \a`}},
		{name: "double quote line continuation", in: "a \"b\\\nc\"", want: []string{"a", "bc"}},
		{name: "backslash outside quotes", in: `a b\ c \$x \'`, want: []string{"a", "b c", "$x", "'"}},
		{name: "line continuation", in: "a \\\n b", want: []string{"a", "b"}},
		{name: "adjacent parts join", in: `a'b'"c"d`, want: []string{"abcd"}},
		{name: "empty quoted words", in: `prog '' ""`, want: []string{"prog", "", ""}},
		{name: "hash inside a word", in: `prog a#b`, want: []string{"prog", "a#b"}},
		{name: "quoted operators", in: `prog '|' "&&" \;`, want: []string{"prog", "|", "&&", ";"}},
		{name: "globs are literal", in: `prog *.log ~ ?`, want: []string{"prog", "*.log", "~", "?"}},
		{name: "unterminated single quote", in: `sh -c 'echo hi`, wantErr: "unterminated single quote at character 7"},
		{name: "unterminated double quote", in: `a "b`, wantErr: "unterminated double quote at character 3"},
		{name: "trailing backslash", in: `a \`, wantErr: "backslash at the end, with nothing to escape"},
		{name: "pipe", in: `prog | cat`, wantErr: `unquoted "|" at character 6: exec is split into words like a shell would, but no shell runs it; quote the character, or use exec = ["/bin/sh", "-c", "..."]`},
		{name: "variable", in: `prog $HOME`, wantErr: `unquoted "$" at character 6: exec is split into words like a shell would, but no shell runs it; quote the character, or use exec = ["/bin/sh", "-c", "..."]`},
		{name: "redirect", in: `prog>x`, wantErr: `unquoted ">" at character 5: exec is split into words like a shell would, but no shell runs it; quote the character, or use exec = ["/bin/sh", "-c", "..."]`},
		{name: "variable in double quotes", in: `prog "$HOME"`, wantErr: `"$" inside double quotes at character 7: a shell would expand it, but no shell runs exec; use single quotes to keep it literally, or exec = ["/bin/sh", "-c", "..."]`},
		{name: "backtick in double quotes", in: "prog \"`id`\"", wantErr: "\"`\" inside double quotes at character 7: a shell would expand it, but no shell runs exec; use single quotes to keep it literally, or exec = [\"/bin/sh\", \"-c\", \"...\"]"},
		{name: "comment", in: `prog #x`, wantErr: `unquoted "#" at character 6: exec is split into words like a shell would, but no shell runs it; quote the character, or use exec = ["/bin/sh", "-c", "..."]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitWords(tt.in)
			if gotErr := errString(err); gotErr != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitWords(%q)\n got %q, %q\nwant %q, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
