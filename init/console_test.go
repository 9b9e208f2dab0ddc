package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The human console shows a long line's first 512 bytes and says how much
// more there is; short lines pass whole.
func TestConsoleCutsLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l := newLogger(f, "console", "info")
	l.serviceLine("noisy", strings.Repeat("é", 2000), false) // 4000 bytes
	l.serviceLine("noisy", "short", true)
	l.con.Close()
	f.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), b)
	}
	want := "       noisy | " + strings.Repeat("é", 256) + " … (3488 more bytes: corral logs noisy)"
	if lines[0] != want {
		t.Errorf("long line:\n%q\nwant\n%q", lines[0], want)
	}
	if lines[1] != "       noisy | short ⏎" {
		t.Errorf("short line: %q", lines[1])
	}
}
