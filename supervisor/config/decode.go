package config

import (
	"encoding"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// fileState collects the problems of one file, placing each on its line.
type fileState struct {
	file  string
	lines keyLines
	errs  []*Error
}

func (f *fileState) errorf(key, format string, args ...any) {
	f.errs = append(f.errs, &Error{File: f.file, Line: f.lines.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// decode decodes text strictly into v, a pointer to a struct pre-filled
// with defaults, and reports whether it found no problem.
//
// It works in three steps, so that every problem is found (not just the
// first, in map order) and named with its exact key, array index and line:
//
//  1. toml.Decode into a generic map: syntax errors and duplicate keys.
//  2. check the generic tree against v's type: unknown keys (exact match
//     only; BurntSushi/toml would also accept a key in another case),
//     wrong types, and values that the field's own unmarshaler refuses
//     (durations, sizes).
//  3. only when that found nothing, toml.Decode into v, which then cannot
//     fail; should it anyway, or leave keys undecoded, that is reported too.
func (f *fileState) decode(text string, v any) bool {
	f.lines = scanKeys(text)
	n := len(f.errs)
	var tree map[string]any
	if _, err := toml.Decode(text, &tree); err != nil {
		f.errs = append(f.errs, f.tomlError(text, err))
		return false
	}
	f.check(reflect.TypeOf(v).Elem(), tree, "")
	if len(f.errs) > n {
		return false
	}
	md, err := toml.Decode(text, v)
	if err != nil {
		f.errs = append(f.errs, f.tomlError(text, err))
		return false
	}
	for _, k := range md.Undecoded() {
		key := joinKeys(k)
		if p := f.lines.keyAt(key, 0); p != "" {
			key = p
		}
		f.errorf(key, "unknown key")
	}
	return len(f.errs) == n
}

// decodeLenient is decode for corral.toml: a problem in one setting must
// not throw away the others (the hostname, the subnet every static address
// depends on). Every problem is reported as decode would; the keys at
// fault are then dropped and the rest decoded, so they keep the defaults v
// was pre-filled with. It reports whether anything could be decoded.
func (f *fileState) decodeLenient(text string, v any) bool {
	f.lines = scanKeys(text)
	n := len(f.errs)
	var tree map[string]any
	if _, err := toml.Decode(text, &tree); err != nil {
		f.errs = append(f.errs, f.tomlError(text, err))
		return false
	}
	f.check(reflect.TypeOf(v).Elem(), tree, "")
	if len(f.errs) == n {
		_, err := toml.Decode(text, v)
		if err != nil {
			f.errs = append(f.errs, f.tomlError(text, err))
			return false
		}
		return true
	}
	for _, e := range f.errs[n:] {
		dropKey(tree, e.Key)
	}
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(tree); err != nil {
		return false
	}
	_, err := toml.Decode(b.String(), v)
	return err == nil
}

// dropKey deletes a dotted key ("network.subnet", "modules[1]": the whole
// array) from a decoded tree. A key inside a table of an array of tables
// ("container.mounts[1].read_only") is deleted from that table alone, so
// that the array's other tables are still checked.
func dropKey(tree map[string]any, key string) {
	if open := strings.IndexByte(key, '['); open >= 0 {
		if end := strings.IndexByte(key[open:], ']'); end > 0 && strings.HasPrefix(key[open+end+1:], ".") {
			idx, err := strconv.Atoi(key[open+1 : open+end])
			if tables, ok := lookupKey(tree, key[:open]).([]map[string]any); ok && err == nil && idx >= 0 && idx < len(tables) {
				dropKey(tables[idx], key[open+end+2:])
				return
			}
		}
	}
	key, _, _ = strings.Cut(key, "[")
	parts := strings.Split(key, ".")
	m := tree
	for i, p := range parts {
		if i == len(parts)-1 {
			delete(m, p)
			return
		}
		next, ok := m[p].(map[string]any)
		if !ok {
			delete(m, p)
			return
		}
		m = next
	}
}

// lookupKey is the value at a dotted key of a decoded tree, or nil.
func lookupKey(tree map[string]any, key string) any {
	var v any = tree
	for _, p := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func joinKeys(k toml.Key) string {
	path := ""
	for _, name := range k {
		path = joinKey(path, name)
	}
	return path
}

var (
	unmarshalerType     = reflect.TypeFor[toml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[duration]()
)

// check walks a decoded TOML value v alongside the Go type t it will be
// decoded into, reporting every key that does not fit.
func (f *fileState) check(t reflect.Type, v any, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch pt := reflect.PointerTo(t); {
	case pt.Implements(unmarshalerType):
		if err := reflect.New(t).Interface().(toml.Unmarshaler).UnmarshalTOML(v); err != nil {
			f.errorf(path, "%v", err)
		}
		return
	case pt.Implements(textUnmarshalerType):
		s, ok := v.(string)
		if !ok {
			f.wrongType(path, t, v)
		} else if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			f.errorf(path, "%v", err)
		}
		return
	}
	ok := true
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		var m map[string]any
		if m, ok = v.(map[string]any); !ok {
			break
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			p := joinKey(path, k)
			if t.Kind() == reflect.Map {
				f.check(t.Elem(), m[k], p)
			} else if field, found := fieldByKey(t, k); found {
				f.check(field.Type, m[k], p)
			} else {
				f.errorf(p, "unknown key%s", suggest(k, keysOf(t)))
			}
		}
	case reflect.Slice:
		var list []any
		if list, ok = asList(v); ok {
			for i, e := range list {
				f.check(t.Elem(), e, indexKey(path, i))
			}
		}
	case reflect.String:
		_, ok = v.(string)
	case reflect.Bool:
		_, ok = v.(bool)
	case reflect.Int, reflect.Int64:
		var n int64
		if n, ok = v.(int64); ok && reflect.New(t).Elem().OverflowInt(n) {
			f.errorf(path, "%d is too large", n)
		}
	case reflect.Float64:
		switch n := v.(type) {
		case float64:
		case int64:
			ok = n >= -1<<53 && n <= 1<<53 // exactly representable
		default:
			ok = false
		}
	}
	if !ok {
		f.wrongType(path, t, v)
	}
}

func (f *fileState) wrongType(path string, t reflect.Type, v any) {
	f.errorf(path, "must be %s, not %s", describe(t), tomlType(v))
}

// asList returns the elements of a TOML array (an array of tables decodes
// as []map[string]any, any other array as []any).
func asList(v any) ([]any, bool) {
	switch v := v.(type) {
	case []any:
		return v, true
	case []map[string]any:
		list := make([]any, len(v))
		for i, m := range v {
			list[i] = m
		}
		return list, true
	}
	return nil, false
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); tomlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func keysOf(t reflect.Type) []string {
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = tomlName(t.Field(i))
	}
	return keys
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// describe names the TOML type a Go field wants, for messages.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return `a duration string such as "10s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "a table"
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			return "an array of strings"
		case reflect.Int:
			return "an array of integers"
		case reflect.Struct:
			return "an array of tables"
		}
		return "an array"
	}
	return t.String()
}

// tomlType names the type of a decoded TOML value, for messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return fmt.Sprintf("%T", v)
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// when it is at most 2 edits away (ignoring case), or "".
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
