package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzDecodeService feeds arbitrary text through the whole per-file path:
// the line scanner, strict decoding and every service check. It must never
// panic, and on text BurntSushi/toml accepts, the scanner must find every
// key the library reports (or problems would lose their lines).
func FuzzDecodeService(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*/services/*.toml")
	more, _ := filepath.Glob("testdata/good/services/*.toml")
	examples, _ := filepath.Glob("../../etc-examples/services/*.toml")
	for _, file := range append(append(seeds, more...), examples...) {
		if text, err := os.ReadFile(file); err == nil {
			f.Add(string(text))
		}
	}
	f.Add("a.\"b\\u00e9\\e\".'c' = 1\n[[x]]\n[x.y]\nz = [{a = [{b = 1}]}]\n")
	g := defaultGlobal("corral.toml")
	f.Fuzz(func(t *testing.T, text string) {
		u := &unit{fileState: fileState{file: "services/fuzz.toml"}, name: "fuzz"}
		decodeService(u, text, &g)
		if u.svc == nil && len(u.errs) == 0 {
			t.Fatal("no service and no problem")
		}
		for _, e := range u.errs {
			if e.Msg == "" {
				t.Errorf("empty message: %+v", e)
			}
		}

		var m map[string]any
		md, err := toml.Decode(text, &m)
		if err != nil {
			return
		}
		lines := scanKeys(text)
		for _, k := range md.Keys() {
			if key := joinKeys(k); lines.keyAt(key, 0) == "" {
				t.Errorf("scanner misses key %q", key)
			}
		}
	})
}

// FuzzSplitWords: the word splitter must never panic, and a word list it
// returns must split back to itself once each word is single-quoted.
func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{`/bin/sh -c 'echo "hi"; exit 3'`, `a "b\"c" d\ e`, `'unterminated`, "a \\\n b", `''`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := splitWords(s)
		if err != nil {
			return
		}
		var quoted string
		for _, w := range words {
			quoted += " '" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		again, err := splitWords(quoted)
		if err != nil || len(again) != len(words) {
			t.Fatalf("re-split of %q: %q, %v; want %q", quoted, again, err, words)
		}
		for i := range words {
			if again[i] != words[i] {
				t.Fatalf("re-split of %q: %q, want %q", quoted, again, words)
			}
		}
	})
}
