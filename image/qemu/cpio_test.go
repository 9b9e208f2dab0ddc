package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// cpioEntry is one entry read back from a newc archive.
type cpioEntry struct {
	Name         string
	Ino, Mode    uint32
	UID, GID     uint32
	Nlink, Mtime uint32
	RMaj, RMin   uint32
	Data         string
}

// readNewc parses a newc archive strictly: magic, hex fields, NUL-ended
// names, 4-byte alignment of names and data, and the trailer last.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("entry at offset %d is not 4-byte aligned", off)
		}
		if len(b) < off+110 {
			t.Fatalf("truncated header at %d", off)
		}
		h := b[off : off+110]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at %d", h[:6], off)
		}
		f := make([]uint32, 13)
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			f[i] = uint32(v)
		}
		nameSize, size := int(f[11]), int(f[6])
		nameEnd := off + 110 + nameSize
		if b[nameEnd-1] != 0 {
			t.Fatalf("name at %d not NUL-terminated", off)
		}
		e := cpioEntry{Name: string(b[off+110 : nameEnd-1]), Ino: f[0], Mode: f[1], UID: f[2], GID: f[3],
			Nlink: f[4], Mtime: f[5], RMaj: f[9], RMin: f[10]}
		data := (nameEnd + 3) &^ 3
		for _, p := range b[nameEnd:data] {
			if p != 0 {
				t.Fatalf("%s: non-zero name padding", e.Name)
			}
		}
		e.Data = string(b[data : data+size])
		off = (data + size + 3) &^ 3
		if e.Name == cpioTrailer {
			for _, p := range b[off:] {
				if p != 0 {
					t.Fatal("data after the trailer")
				}
			}
			if len(b)%512 != 0 {
				t.Errorf("archive is %d bytes, not a multiple of 512", len(b))
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCpioHeaderLayout(t *testing.T) {
	var buf bytes.Buffer
	w := newCpioWriter(&buf)
	if err := w.File("etc/hostname", 0o644, 4, bytes.NewReader([]byte("pi3\n"))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// ino 1, mode 0100644, uid 0, gid 0, nlink 1, mtime, size 4, dev 0 0,
	// rdev 0 0, namesize 13, check 0; name + NUL (123 bytes) padded to 124.
	want := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		1, 0o100644, 0, 0, 1, cpioEpoch, 4, 0, 0, 0, 0, 13, 0) + "etc/hostname\x00\x00" + "pi3\n"
	if got := buf.String()[:len(want)]; got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestCpioRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "/abs", "a\x00b"} {
		w := newCpioWriter(io.Discard)
		if err := w.Dir(name, 0o755); err == nil {
			t.Errorf("Dir(%q): no error", name)
		}
	}
}

func TestWriteTreeCpio(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777))
	must(os.WriteFile(filepath.Join(root, "usr/bin/corral"), []byte("\x7fELF..."), 0o755))
	must(os.WriteFile(filepath.Join(root, "empty"), nil, 0o600))
	must(os.Symlink("usr/bin/corral", filepath.Join(root, "init")))

	var buf bytes.Buffer
	if err := writeTreeCpio(&buf, root, []cpioNode{consoleNode}); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, raw)

	want := []struct {
		name string
		mode uint32
		data string
	}{
		{"dev", 0o040755, ""},
		{"empty", 0o100600, ""},
		{"init", 0o120777, "usr/bin/corral"},
		{"tmp", 0o041777, ""},
		{"usr", 0o040755, ""},
		{"usr/bin", 0o040755, ""},
		{"usr/bin/corral", 0o100755, "\x7fELF..."},
		{"dev/console", 0o020600, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	inos := map[uint32]bool{}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Mode != w.mode || g.Data != w.data {
			t.Errorf("entry %d = %q mode %o data %q, want %q mode %o data %q", i, g.Name, g.Mode, g.Data, w.name, w.mode, w.data)
		}
		if g.UID != 0 || g.GID != 0 || g.Mtime != cpioEpoch {
			t.Errorf("%s: uid %d gid %d mtime %d, want root and the fixed epoch", g.Name, g.UID, g.GID, g.Mtime)
		}
		if inos[g.Ino] {
			t.Errorf("%s: inode %d reused", g.Name, g.Ino)
		}
		inos[g.Ino] = true
	}
	if c := got[len(got)-1]; c.RMaj != 5 || c.RMin != 1 {
		t.Errorf("dev/console is %d:%d, want 5:1", c.RMaj, c.RMin)
	}

	// The same tree gives the same bytes.
	var again bytes.Buffer
	if err := writeTreeCpio(&again, root, []cpioNode{consoleNode}); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	_ = writeTreeCpio(&first, root, []cpioNode{consoleNode})
	if !bytes.Equal(first.Bytes(), again.Bytes()) {
		t.Error("two archives of the same tree differ")
	}
}

func TestWriteTreeCpioNodeNeedsParent(t *testing.T) {
	root := t.TempDir()
	if err := writeTreeCpio(io.Discard, root, []cpioNode{consoleNode}); err == nil {
		t.Error("a device node without its directory was accepted")
	}
}
