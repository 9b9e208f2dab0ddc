package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// raw keeps a value whose TOML type may vary (exec, user, group) for a check
// to interpret, so that check can name the exact key at fault.
type raw struct{ v any }

// UnmarshalTOML implements toml.Unmarshaler.
func (r *raw) UnmarshalTOML(v any) error {
	r.v = v
	return nil
}

// duration is a TOML string parsed by time.ParseDuration: "100ms", "10s",
// "2m", "1h30m". Negative durations are refused.
type duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *duration) UnmarshalText(text []byte) error {
	v, err := parseDuration(string(text))
	*d = duration(v)
	return err
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf(`invalid duration %q (use a number with a unit: ms, s, m or h, e.g. "500ms" or "10s")`, s)
	case d < 0:
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// size is a byte count: a TOML integer (bytes), or a string of digits with
// an optional unit K, M, G or T (binary multiples: 1K = 1024) and an
// optional trailing "B" or "iB": "512K", "64M", "64MB" and "64MiB" are
// equal; "4096" and "4096B" are bytes.
type size int64

// UnmarshalTOML implements toml.Unmarshaler.
func (s *size) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		n, err := parseSize(v)
		*s = size(n)
		return err
	case int64:
		if v < 0 {
			return fmt.Errorf("negative size %d", v)
		}
		*s = size(v)
		return nil
	}
	return fmt.Errorf(`must be a size such as "64M" or a number of bytes, not %s`, tomlType(v))
}

func parseSize(s string) (int64, error) {
	rest := strings.TrimLeft(s, "0123456789")
	digits, suffix, shift := s[:len(s)-len(rest)], rest, 0
	if suffix != "" {
		if i := strings.IndexByte("KMGT", suffix[0]); i >= 0 {
			shift, suffix = 10*(i+1), suffix[1:]
			if suffix == "iB" {
				suffix = ""
			}
		}
	}
	if digits == "" || (suffix != "" && suffix != "B") {
		return 0, fmt.Errorf(`invalid size %q (use a number with K, M, G or T, e.g. "64M")`, s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}

// formatSize prints n with the largest unit that divides it: 8M, 1536K, 100.
func formatSize(n int64) string {
	for shift, u := 40, 3; u >= 0; shift, u = shift-10, u-1 {
		if n != 0 && n%(1<<shift) == 0 {
			return strconv.FormatInt(n>>shift, 10) + string("KMGT"[u])
		}
	}
	return strconv.FormatInt(n, 10)
}

// splitWords splits an exec string into words the way a POSIX shell would,
// without expanding anything: whitespace separates words; single quotes
// keep everything literally; double quotes keep everything but a backslash
// before $ ` " \ or a newline; outside quotes a backslash keeps the next
// character (and a backslash-newline disappears). Characters that would
// make a shell do more than split words (| & ; < > ( ) $ ` and a leading #)
// are refused unquoted, so nobody is surprised that no shell runs.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		word  strings.Builder
		in    bool // inside a word (even an empty one such as '')
	)
	end := func() {
		if in {
			words = append(words, word.String())
			word.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			end()
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote at character %d", i+1)
			}
			word.WriteString(s[i+1 : i+1+j])
			in, i = true, i+1+j
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && strings.IndexByte("$`\"\\\n", s[j+1]) >= 0 {
					j++
					if s[j] == '\n' {
						continue
					}
				} else if s[j] == '$' || s[j] == '`' {
					// A shell would expand these inside double quotes.
					return nil, fmt.Errorf(`%q inside double quotes at character %d: a shell would expand it, but no shell runs exec; use single quotes to keep it literally, or exec = ["/bin/sh", "-c", "..."]`, string(s[j]), j+1)
				}
				word.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated double quote at character %d", i+1)
			}
			in, i = true, j
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("backslash at the end, with nothing to escape")
			}
			i++
			if s[i] != '\n' {
				word.WriteByte(s[i])
				in = true
			}
		case strings.IndexByte("|&;<>()$`", c) >= 0 || c == '#' && !in:
			return nil, fmt.Errorf(`unquoted %q at character %d: exec is split into words like a shell would, but no shell runs it; quote the character, or use exec = ["/bin/sh", "-c", "..."]`, string(c), i+1)
		default:
			word.WriteByte(c)
			in = true
		}
	}
	end()
	return words, nil
}
