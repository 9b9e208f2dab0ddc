package config

import (
	"fmt"
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private (and has one position per key
// name, not per array element), so this file finds them itself: a small
// scanner over the file text that maps every key path to its 1-based line.
//
// Paths are written the way messages show keys: names joined by ".", quoted
// when not bare, array elements as "[i]" counting from 0:
//
//	limits.memory
//	env."MY VAR"
//	requires[1]
//	container.mounts[0].target    ([[container.mounts]] or mounts = [{...}])
//
// The scanner understands tables, arrays of tables, dotted and quoted keys,
// comments, all four string forms (including multi-line ones), and arrays
// and inline tables spanning lines. It never fails: on text that is not
// TOML it records what it can, and since it only runs to place problems
// that toml.Decode already found (or on valid TOML), that is enough.

// keyLines is where every key of one file is.
type keyLines struct {
	all   []keyLine      // every key, header and array element, in file order
	first map[string]int // path -> line of its first appearance
}

type keyLine struct {
	path string
	line int
}

// line returns the line of path or, when path is not in the file (a key
// left out), of its nearest parent that is; 0 when none is.
func (k keyLines) line(path string) int {
	for path != "" {
		if n, ok := k.first[path]; ok {
			return n
		}
		path = parentPath(path)
	}
	return 0
}

// has reports whether path is written in the file.
func (k keyLines) has(path string) bool {
	_, ok := k.first[path]
	return ok
}

// keyAt returns the path of the key on line whose path without array
// indexes is key (the form BurntSushi/toml reports), or "" when there is
// none. Line 0 matches the first such key anywhere.
func (k keyLines) keyAt(key string, line int) string {
	if key == "" {
		return ""
	}
	for _, kl := range k.all {
		if (line == 0 || kl.line == line) && stripIndexes(kl.path) == key {
			return kl.path
		}
	}
	return ""
}

// scanKeys maps the keys of a TOML text to their lines.
func scanKeys(text string) keyLines {
	s := &scanner{text: text, line: 1, aot: map[string]int{}}
	s.keys.first = map[string]int{}
	for s.skip(true); s.pos < len(s.text); s.skip(true) {
		start := s.pos
		if s.text[s.pos] == '[' {
			s.header()
		} else {
			s.keyValue(s.table, 0)
		}
		if s.pos == start {
			s.skipLine()
		}
	}
	return s.keys
}

// maxDepth bounds nesting of arrays and inline tables, so hostile input
// cannot exhaust the stack.
const maxDepth = 64

type scanner struct {
	text  string
	pos   int
	line  int
	table string         // path of the current [table]
	aot   map[string]int // array-of-tables path -> elements seen so far
	keys  keyLines
}

func (s *scanner) record(path string, line int) {
	s.keys.all = append(s.keys.all, keyLine{path, line})
	if _, ok := s.keys.first[path]; !ok {
		s.keys.first[path] = line
	}
}

func (s *scanner) peek() byte {
	if s.pos < len(s.text) {
		return s.text[s.pos]
	}
	return 0
}

// skip skips blanks and, with newlines, also line ends and comments.
func (s *scanner) skip(newlines bool) {
	for s.pos < len(s.text) {
		switch c := s.text[s.pos]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.pos++
		case newlines && c == '\n':
			s.pos++
			s.line++
		case newlines && c == '#':
			for s.pos < len(s.text) && s.text[s.pos] != '\n' {
				s.pos++
			}
		default:
			return
		}
	}
}

func (s *scanner) skipLine() {
	for s.pos < len(s.text) && s.text[s.pos] != '\n' {
		s.pos++
	}
}

// header scans [table] or [[array.of.tables]].
func (s *scanner) header() {
	line := s.line
	s.pos++
	array := s.peek() == '['
	if array {
		s.pos++
	}
	names, ok := s.key()
	if !ok || s.peek() != ']' {
		return
	}
	s.pos++
	if array {
		if s.peek() != ']' {
			return
		}
		s.pos++
	}
	last := len(names) - 1
	if !array {
		last++
	}
	path := ""
	for _, name := range names[:last] {
		path = joinKey(path, name)
		if n, ok := s.aot[path]; ok {
			path = indexKey(path, n-1)
		}
		s.record(path, line)
	}
	if array {
		path = joinKey(path, names[last])
		s.record(path, line)
		n := s.aot[path]
		s.aot[path] = n + 1
		path = indexKey(path, n)
		s.record(path, line)
	}
	s.table = path
}

// keyValue scans key = value inside the table at path table.
func (s *scanner) keyValue(table string, depth int) {
	line := s.line
	names, ok := s.key()
	if !ok || s.peek() != '=' {
		return
	}
	s.pos++
	path := table
	for _, name := range names {
		path = joinKey(path, name)
		s.record(path, line)
	}
	s.value(path, depth)
}

// key scans a dotted key and returns its unquoted names.
func (s *scanner) key() ([]string, bool) {
	var names []string
	for {
		s.skip(false)
		var name string
		switch c := s.peek(); c {
		case '"', '\'':
			start := s.pos
			s.str()
			body := s.text[start:s.pos]
			if len(body) < 2 || body[len(body)-1] != c {
				return nil, false
			}
			name = body[1 : len(body)-1]
			if c == '"' {
				name = unescape(name)
			}
		default:
			start := s.pos
			for s.pos < len(s.text) && isBare(s.text[s.pos]) {
				s.pos++
			}
			if s.pos == start {
				return nil, false
			}
			name = s.text[start:s.pos]
		}
		names = append(names, name)
		s.skip(false)
		if s.peek() != '.' {
			return names, true
		}
		s.pos++
	}
}

// value scans one value, recording the keys of inline tables and the
// elements of arrays under path.
func (s *scanner) value(path string, depth int) {
	s.skip(false)
	if depth > maxDepth {
		s.skipLine()
		return
	}
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.pos++
		for i := 0; ; i++ {
			s.skip(true)
			if s.pos >= len(s.text) {
				return
			}
			if s.peek() == ']' {
				s.pos++
				return
			}
			elem := indexKey(path, i)
			s.record(elem, s.line)
			s.value(elem, depth+1)
			s.skip(true)
			if s.peek() != ',' {
				if s.peek() == ']' {
					s.pos++
				}
				return
			}
			s.pos++
		}
	case '{':
		s.pos++
		for {
			s.skip(true) // TOML 1.1 allows newlines in inline tables
			if s.pos >= len(s.text) {
				return
			}
			if s.peek() == '}' {
				s.pos++
				return
			}
			start := s.pos
			s.keyValue(path, depth+1)
			s.skip(true)
			if s.pos == start || s.peek() != ',' {
				if s.peek() == '}' {
					s.pos++
				}
				return
			}
			s.pos++
		}
	default:
		// Numbers, booleans, dates (which may contain a space): up to
		// whatever ends a value.
		for s.pos < len(s.text) && strings.IndexByte(",]}#\n", s.text[s.pos]) < 0 {
			s.pos++
		}
	}
}

// str scans a string of any of the four forms, counting its lines.
func (s *scanner) str() {
	q := s.text[s.pos]
	triple := strings.Repeat(string(q), 3)
	multi := strings.HasPrefix(s.text[s.pos:], triple)
	if multi {
		s.pos += 3
	} else {
		s.pos++
	}
	for s.pos < len(s.text) {
		c := s.text[s.pos]
		switch {
		case c == '\\' && q == '"' && s.pos+1 < len(s.text):
			if s.text[s.pos+1] == '\n' {
				s.line++
			}
			s.pos += 2
			continue
		case c == '\n':
			if !multi {
				return
			}
			s.line++
		case multi && strings.HasPrefix(s.text[s.pos:], triple):
			s.pos += 3
			// Up to two more quotes belong to the string: """a""""" is a"".
			for n := 0; n < 2 && s.peek() == q; n++ {
				s.pos++
			}
			return
		case !multi && c == q:
			s.pos++
			return
		}
		s.pos++
	}
}

var (
	escapes    = map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', 'e': 0x1b, '"': '"', '\\': '\\'}
	hexEscapes = map[byte]int{'x': 2, 'u': 4, 'U': 8} // digits that follow
)

// unescape decodes the escapes of a TOML basic string (\b \t \n \f \r \e
// \" \\ \xHH \uHHHH \UHHHHHHHH); a bad escape is kept as written.
func unescape(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		if r, ok := escapes[s[i+1]]; ok {
			b.WriteByte(r)
			i++
			continue
		}
		if n := hexEscapes[s[i+1]]; n > 0 && i+2+n <= len(s) {
			if r, err := strconv.ParseUint(s[i+2:i+2+n], 16, 32); err == nil {
				b.WriteRune(rune(r))
				i += 1 + n
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// joinKey appends name to path, quoting it when it is not a bare key.
func joinKey(path, name string) string {
	part := name
	bare := name != ""
	for i := 0; i < len(name); i++ {
		bare = bare && isBare(name[i])
	}
	if !bare {
		part = strconv.Quote(name)
	}
	if path == "" {
		return part
	}
	return path + "." + part
}

func indexKey(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// splitPath splits a path into its parts: names (quoted as written, the
// first without a ".", the rest with one) and "[i]" indexes.
func splitPath(p string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(p); {
		switch p[i] {
		case '.', '[':
			if i > start {
				parts = append(parts, p[start:i])
			}
			start = i
			if p[i] == '[' {
				j := strings.IndexByte(p[i:], ']')
				if j < 0 {
					return append(parts, p[start:])
				}
				i += j + 1
				parts = append(parts, p[start:i])
				start = i
				continue
			}
			i++
		case '"':
			q, err := strconv.QuotedPrefix(p[i:])
			if err != nil {
				return append(parts, p[start:])
			}
			i += len(q)
		default:
			i++
		}
	}
	if start < len(p) {
		parts = append(parts, p[start:])
	}
	return parts
}

// parentPath strips the last part of a path: a name or an index.
func parentPath(p string) string {
	parts := splitPath(p)
	if len(parts) == 0 {
		return ""
	}
	return strings.TrimPrefix(strings.Join(parts[:len(parts)-1], ""), ".")
}

// stripIndexes removes every "[i]" from a path.
func stripIndexes(p string) string {
	var b strings.Builder
	for _, part := range splitPath(p) {
		if !strings.HasPrefix(part, "[") {
			b.WriteString(part)
		}
	}
	return strings.TrimPrefix(b.String(), ".")
}
