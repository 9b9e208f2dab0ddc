package logfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestRotationKeepsNewestFilesWithinTheCaps(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Options{Dir: dir, FileSize: 1000, Keep: 2, TotalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Writer("web")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 4, 7, 15, 0, 123456000, time.UTC)
	// 100 records of 100 bytes (27 + 1 + 71 + 1): 10 files' worth.
	for i := 0; i < 100; i++ {
		text := fmt.Sprintf("%03d %s", i, strings.Repeat("x", 67))
		rec := Record(t0, FlagLine, text)
		if len(rec) != 100 {
			t.Fatalf("record is %d bytes", len(rec))
		}
		for !w.Write(rec) {
			time.Sleep(time.Millisecond)
		}
	}
	w.Close()
	if got, want := names(t, dir), []string{"web.log", "web.log.1", "web.log.2"}; !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	// Files never pass FileSize, and the newest records are in web.log.
	for _, n := range []string{"web.log", "web.log.1", "web.log.2"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		if len(b) > 1000 || len(b) == 0 {
			t.Errorf("%s is %d bytes", n, len(b))
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "web.log"))
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	ts, flag, text, ok := ParseRecord(lines[len(lines)-1])
	if !ok || !ts.Equal(t0) || flag != FlagLine || !strings.HasPrefix(text, "099 ") {
		t.Errorf("last record %q: %v %q %q %v", lines[len(lines)-1], ts, flag, text, ok)
	}
}

func TestTotalSizeDeletesTheOldestRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Options{Dir: dir, FileSize: 500, Keep: 10, TotalSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := d.Writer("a")
	b, _ := d.Writer("b")
	rec := Record(time.Now(), FlagLine, strings.Repeat("y", 70)) // 99 bytes
	for i := 0; i < 60; i++ {
		for !a.Write(rec) {
			time.Sleep(time.Millisecond)
		}
		if i%6 == 0 {
			for !b.Write(rec) {
				time.Sleep(time.Millisecond)
			}
		}
	}
	a.Close()
	b.Close()
	var total int64
	for _, n := range names(t, dir) {
		info, _ := os.Stat(filepath.Join(dir, n))
		total += info.Size()
	}
	// The cap is checked at each rotation; the current files may add one
	// file's worth each on top.
	if total > 2000+2*500 {
		t.Errorf("directory holds %d bytes, cap 2000 (+ current files)", total)
	}
	if got := names(t, dir); !slices.Contains(got, "b.log") || !slices.Contains(got, "a.log") {
		t.Errorf("a current file was deleted: %v", got)
	}
}

func TestRecordsKeepEveryByte(t *testing.T) {
	for _, text := range []string{"", "plain", "\x00\xff\x1b[2J\r\t"} {
		rec := Record(time.Unix(0, 0), FlagPartial, text)
		_, flag, got, ok := ParseRecord(bytes.TrimSuffix(rec, []byte("\n")))
		if !ok || flag != FlagPartial || got != text {
			t.Errorf("%q -> %q -> %q %q %v", text, rec, flag, got, ok)
		}
	}
}

func TestWriteNeverBlocks(t *testing.T) {
	d, err := Open(Options{Dir: t.TempDir(), FileSize: 1 << 20, Keep: 1, TotalSize: 1 << 30, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := d.Writer("flood")
	defer w.Close()
	start, dropped := time.Now(), 0
	for i := 0; i < 100000; i++ {
		if !w.Write(Record(time.Now(), FlagLine, "line")) {
			dropped++
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("100000 writes took %s", time.Since(start))
	}
	t.Logf("dropped %d of 100000 with a queue of 2", dropped)
}

func TestReadTailAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(Options{Dir: dir, FileSize: 500, Keep: 3, TotalSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := d.Writer("web")
	t0 := time.Unix(1000, 0)
	for i := 0; i < 20; i++ {
		for !w.Write(Record(t0.Add(time.Duration(i)*time.Second), FlagLine, fmt.Sprintf("line %02d %s", i, strings.Repeat("x", 60)))) {
			time.Sleep(time.Millisecond)
		}
	}
	w.Close()
	got, err := d.ReadTail("web", 3)
	if err != nil || len(got) != 3 || !strings.HasPrefix(got[0].Text, "line 17") || !strings.HasPrefix(got[2].Text, "line 19") {
		t.Fatalf("ReadTail(3) = %+v, %v", got, err)
	}
	all, _ := d.ReadTail("web", 0)
	for i := 1; i < len(all); i++ {
		if !all[i].Time.After(all[i-1].Time) {
			t.Errorf("out of order at %d: %v after %v", i, all[i].Time, all[i-1].Time)
		}
	}
	if len(all) < 12 || !strings.HasPrefix(all[len(all)-1].Text, "line 19") {
		t.Errorf("ReadTail(0) has %d records", len(all))
	}
	if s := d.Streams(); !slices.Equal(s, []string{"web"}) {
		t.Errorf("Streams = %v", s)
	}
}
