// Package logfile keeps log streams in files on the data partition: one
// file per stream, rotated by size, with a cap on the whole directory.
//
// # Layout
//
//	DIR/NAME.log      the current file of stream NAME (a service, or "corral")
//	DIR/NAME.log.1    the previous one; .2 is older, up to .Keep
//
// # Rotation
//
// A record that would take NAME.log past FileSize first rotates it:
// NAME.log.(Keep) is deleted, every NAME.log.N becomes NAME.log.(N+1), and
// NAME.log becomes NAME.log.1. After a rotation, while the files of the
// directory (every stream's) add up to more than TotalSize, the oldest
// rotated file of the directory is deleted. A current file is never
// deleted, so TotalSize is exceeded at most by the current files.
//
// # Records
//
// Each line is one record:
//
//	2026-12-04T07:15:00.123456Z text of the line
//	2026-12-04T07:15:00.123456Z+a part without its newline
//	2026-12-04T07:15:00.123456Z!corral: dropped 12 lines (rate limit)
//
// A UTC timestamp of fixed width (27 bytes), one flag byte (' ' a whole
// line, '+' a line that did not end with a newline, '!' a note corral wrote
// about the stream), then the line's bytes exactly as printed, and '\n'.
// Any byte but '\n' survives. Concatenating the text of a run of '+'
// records and the whole record after it gives back the original line.
//
// # Never blocking
//
// Write only queues: each stream has a writer goroutine and a bounded
// queue. When the disk is slower than the service, Write reports the
// record dropped and the caller counts it.
package logfile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TimeLayout is the records' timestamp: fixed width, UTC.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Record flags.
const (
	FlagLine    = ' '
	FlagPartial = '+'
	FlagNote    = '!'
)

// Options configure a directory.
type Options struct {
	// Dir holds the files; it is created if needed.
	Dir string
	// FileSize is where a file is rotated.
	FileSize int64
	// Keep is how many rotated files each stream keeps.
	Keep int
	// TotalSize caps all files of the directory together.
	TotalSize int64
	// Queue is how many records each stream may have waiting (0 = 4096).
	Queue int
}

// Dir is one log directory.
type Dir struct {
	o Options

	mu    sync.Mutex
	sizes map[string]int64 // file name -> size, for TotalSize
}

// Open creates the directory if needed and takes stock of the files in it.
func Open(o Options) (*Dir, error) {
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Keep < 0 {
		o.Keep = 0
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create log directory %s: %w", o.Dir, err)
	}
	d := &Dir{o: o, sizes: map[string]int64{}}
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("read log directory %s: %w", o.Dir, err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && strings.Contains(e.Name(), ".log") {
			d.sizes[e.Name()] = info.Size()
		}
	}
	return d, nil
}

// Path is the directory.
func (d *Dir) Path() string { return d.o.Dir }

// Writer is one stream's file and its writer goroutine.
type Writer struct {
	d    *Dir
	name string
	q    chan []byte
	done chan struct{}
	once sync.Once

	// Owned by the writer goroutine.
	f    *os.File
	bw   *bufio.Writer
	size int64
	err  error // the last write error, reported once
}

// Writer opens (appends to) the stream's current file and starts its
// writer goroutine; Close stops it.
func (d *Dir) Writer(name string) (*Writer, error) {
	w := &Writer{d: d, name: name, q: make(chan []byte, d.o.Queue), done: make(chan struct{})}
	if err := w.open(); err != nil {
		return nil, err
	}
	go w.run()
	return w, nil
}

func (w *Writer) file(n int) string {
	if n == 0 {
		return w.name + ".log"
	}
	return w.name + ".log." + strconv.Itoa(n)
}

func (w *Writer) open() error {
	p := filepath.Join(w.d.o.Dir, w.file(0))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log file %s: %w", p, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log file %s: %w", p, err)
	}
	w.f, w.bw, w.size = f, bufio.NewWriterSize(f, 32<<10), info.Size()
	w.d.setSize(w.file(0), w.size)
	return nil
}

// Record formats one record.
func Record(t time.Time, flag byte, text string) []byte {
	b := make([]byte, 0, len(TimeLayout)+2+len(text))
	b = t.UTC().AppendFormat(b, TimeLayout)
	b = append(b, flag)
	b = append(b, text...)
	return append(b, '\n')
}

// Write queues one record (made by Record). It never blocks: false means
// the queue was full and the record was dropped.
func (w *Writer) Write(rec []byte) bool {
	select {
	case <-w.done:
		return false
	default:
	}
	select {
	case w.q <- rec:
		return true
	default:
		return false
	}
}

// Close writes what is queued, closes the file and stops the goroutine.
// Write must not be called after Close.
func (w *Writer) Close() {
	w.once.Do(func() { close(w.q) })
	<-w.done
}

func (w *Writer) run() {
	defer close(w.done)
	defer func() {
		if w.bw != nil {
			_ = w.bw.Flush()
			w.f.Close()
		}
	}()
	for rec := range w.q {
		w.write(rec)
		// Flush when there is nothing more to write right now: no timer,
		// and a burst costs one write(2) per 32 KiB.
		if len(w.q) == 0 && w.bw != nil {
			if err := w.bw.Flush(); err != nil {
				w.fail(err)
			}
		}
	}
}

func (w *Writer) write(rec []byte) {
	if w.bw == nil {
		if w.open() != nil {
			return // the directory is gone (data partition unmounted?)
		}
	}
	if w.size > 0 && w.size+int64(len(rec)) > w.d.o.FileSize {
		w.rotate()
		if w.bw == nil {
			return
		}
	}
	n, err := w.bw.Write(rec)
	w.size += int64(n)
	w.d.setSize(w.file(0), w.size)
	if err != nil {
		w.fail(err)
	}
}

func (w *Writer) fail(err error) {
	if w.err == nil || err.Error() != w.err.Error() {
		fmt.Fprintf(os.Stderr, "corral: write log file %s: %v\n", filepath.Join(w.d.o.Dir, w.file(0)), err)
	}
	w.err = err
}

// rotate shifts the files and opens a fresh current one.
func (w *Writer) rotate() {
	_ = w.bw.Flush()
	w.f.Close()
	w.f, w.bw = nil, nil
	dir := w.d.o.Dir
	w.d.mu.Lock()
	if w.d.o.Keep == 0 {
		_ = os.Remove(filepath.Join(dir, w.file(0)))
		delete(w.d.sizes, w.file(0))
	} else {
		_ = os.Remove(filepath.Join(dir, w.file(w.d.o.Keep)))
		delete(w.d.sizes, w.file(w.d.o.Keep))
		for n := w.d.o.Keep - 1; n >= 0; n-- {
			from, to := w.file(n), w.file(n+1)
			if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err == nil {
				w.d.sizes[to] = w.d.sizes[from]
				delete(w.d.sizes, from)
			}
		}
	}
	w.d.trimLocked()
	w.d.mu.Unlock()
	if err := w.open(); err != nil {
		w.fail(err)
	}
}

func (d *Dir) setSize(file string, n int64) {
	d.mu.Lock()
	d.sizes[file] = n
	d.mu.Unlock()
}

// trimLocked deletes the oldest rotated files while the directory is over
// TotalSize.
func (d *Dir) trimLocked() {
	var total int64
	type rotated struct {
		name string
		mod  time.Time
	}
	var old []rotated
	for name, n := range d.sizes {
		total += n
		if !strings.HasSuffix(name, ".log") {
			info, err := os.Stat(filepath.Join(d.o.Dir, name))
			if errors.Is(err, fs.ErrNotExist) {
				delete(d.sizes, name)
				total -= n
				continue
			}
			if err == nil {
				old = append(old, rotated{name, info.ModTime()})
			}
		}
	}
	slices.SortFunc(old, func(a, b rotated) int { return a.mod.Compare(b.mod) })
	for _, r := range old {
		if total <= d.o.TotalSize {
			break
		}
		if err := os.Remove(filepath.Join(d.o.Dir, r.name)); err == nil || errors.Is(err, fs.ErrNotExist) {
			total -= d.sizes[r.name]
			delete(d.sizes, r.name)
		}
	}
}

// Total is what the directory's log files add up to, as far as corral
// knows (for tests and metrics).
func (d *Dir) Total() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var t int64
	for _, n := range d.sizes {
		t += n
	}
	return t
}

// ParseRecord splits a record (without its '\n') into its parts.
func ParseRecord(b []byte) (t time.Time, flag byte, text string, ok bool) {
	if len(b) < len(TimeLayout)+1 {
		return time.Time{}, 0, "", false
	}
	t, err := time.Parse(TimeLayout, string(b[:len(TimeLayout)]))
	if err != nil {
		return time.Time{}, 0, "", false
	}
	return t, b[len(TimeLayout)], string(b[len(TimeLayout)+1:]), true
}

// Entry is one record read back from a file.
type Entry struct {
	Time time.Time
	Flag byte
	Text string
}

// Streams lists the streams that have a current file in the directory.
func (d *Dir) Streams() []string {
	entries, _ := os.ReadDir(d.o.Dir)
	var out []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".log"); ok && e.Type().IsRegular() {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// ReadTail returns up to n of the newest records of a stream (n <= 0:
// every one kept), oldest first, from its rotated files and the current
// one. It reads what is on disk: records still queued are not there yet,
// and a rotation while it reads may repeat or skip a file's worth.
func (d *Dir) ReadTail(name string, n int) ([]Entry, error) {
	w := &Writer{name: name}
	var out []Entry
	for k := 0; k <= d.o.Keep; k++ {
		b, err := os.ReadFile(filepath.Join(d.o.Dir, w.file(k)))
		if errors.Is(err, fs.ErrNotExist) {
			if k == 0 {
				continue
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read log file %s: %w", filepath.Join(d.o.Dir, w.file(k)), err)
		}
		if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
			b = b[:i] // a record still being written has no '\n' yet
		} else {
			b = nil
		}
		var file []Entry
		for _, rec := range strings.Split(string(b), "\n") {
			if t, flag, text, ok := ParseRecord([]byte(rec)); ok {
				file = append(file, Entry{t, flag, text})
			}
		}
		out = append(file, out...)
		if n > 0 && len(out) >= n {
			break
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}
