package supervisor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/corral-init/corral/internal/logfile"
	"github.com/corral-init/corral/internal/logring"
)

// CorralStream is the name of corral's own log stream (`corral logs
// corral`); config reserves it, so no service can take it.
const CorralStream = "corral"

// Remote receives every line for a central log collector (syslog). Send
// must never block.
type Remote interface {
	Send(app string, t time.Time, severity int, text string)
}

// Syslog severities used for lines.
const (
	SevError  = 3
	SevWarn   = 4
	SevNotice = 5
	SevInfo   = 6
	SevDebug  = 7
)

// LogOptions configure where lines go besides the rings.
type LogOptions struct {
	// Files keeps a rotated file per stream (nil: RAM only).
	Files *logfile.Dir
	// Rate is the lines per second a service may print on average, Burst
	// how many at once; lines over it are dropped and counted. Rate 0: no
	// limit. corral's own stream is never limited.
	Rate  float64
	Burst int
	// Remote forwards every line (nil: none).
	Remote Remote
	// RingLines and RingBytes size each stream's ring (0: 1000, 256 KiB).
	RingLines, RingBytes int
	// Log is where corral says that lines were dropped.
	Log zerolog.Logger
}

// Logs is every stream's ring and sinks. Streams live as long as Logs,
// across restarts and config reloads of their service.
type Logs struct {
	o LogOptions

	mu      sync.Mutex
	streams map[string]*Stream
	closed  bool

	wakeMu sync.Mutex
	wake   chan struct{} // closed by the next line of any stream
}

// NewLogs returns an empty registry.
func NewLogs(o LogOptions) *Logs {
	if o.RingLines <= 0 {
		o.RingLines = 1000
	}
	if o.RingBytes <= 0 {
		o.RingBytes = 256 << 10
	}
	return &Logs{o: o, streams: map[string]*Stream{}}
}

// Stream returns the stream called name, creating it.
func (l *Logs) Stream(name string) *Stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.streams[name]; ok {
		return s
	}
	s := &Stream{name: name}
	s.ring = logring.NewNamed(name, l.o.RingLines, l.o.RingBytes, l.notify)
	s.mu.Lock()
	s.apply(l.o, l.closed)
	s.mu.Unlock()
	l.streams[name] = s
	return s
}

// Configure changes where lines go (once the configuration is read and
// the data partition mounted). Streams that exist get files now; what
// their rings hold so far is written to the new file first, so corral's
// early boot lines are kept too.
func (l *Logs) Configure(o LogOptions) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o.RingLines, o.RingBytes = l.o.RingLines, l.o.RingBytes
	l.o = o
	for _, s := range l.streams {
		s.mu.Lock()
		hadFile := s.file != nil
		s.apply(o, l.closed)
		if !hadFile && s.file != nil {
			for _, ln := range s.ring.Tail(0) {
				s.file.Write(logfile.Record(ln.Time, flagOf(ln), ln.Text))
			}
		}
		s.mu.Unlock()
	}
}

func flagOf(l logring.Line) byte {
	switch {
	case l.Note:
		return logfile.FlagNote
	case l.Partial:
		return logfile.FlagPartial
	}
	return logfile.FlagLine
}

// apply takes the options; the caller holds s.mu.
func (s *Stream) apply(o LogOptions, closed bool) {
	s.rate, s.burst, s.remote, s.log = o.Rate, o.Burst, o.Remote, o.Log
	s.limited = s.name != CorralStream && o.Rate > 0
	s.tokens = float64(o.Burst)
	if s.file == nil && o.Files != nil && !closed {
		w, err := o.Files.Writer(s.name)
		if err != nil {
			o.Log.Error().Err(err).Str("svc", s.name).Msg("log file: this stream is kept in RAM only")
		} else {
			s.file = w
		}
	}
}

// Get returns an existing stream.
func (l *Logs) Get(name string) (*Stream, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[name]
	return s, ok
}

// Names lists the streams, sorted.
func (l *Logs) Names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n := range l.streams {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Wait returns a channel closed by the next line of any stream.
func (l *Logs) Wait() <-chan struct{} {
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return l.wake
}

func (l *Logs) notify() {
	l.wakeMu.Lock()
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
	l.wakeMu.Unlock()
}

// Close flushes and closes the files (at shutdown). Lines after Close
// still reach the rings.
func (l *Logs) Close() {
	l.mu.Lock()
	l.closed = true
	streams := make([]*Stream, 0, len(l.streams))
	for _, s := range l.streams {
		streams = append(streams, s)
	}
	l.mu.Unlock()
	for _, s := range streams {
		s.close()
	}
}

// Stream is one service's (or corral's) lines: a ring, maybe a file and a
// remote collector. Line never blocks.
type Stream struct {
	name string
	ring *logring.Ring

	mu         sync.Mutex
	limited    bool
	rate       float64
	burst      int
	remote     Remote
	log        zerolog.Logger
	file       *logfile.Writer // nil once closed
	tokens     float64
	last       time.Time
	rateDrops  uint64    // not announced yet
	announced  time.Time // the last announcement: at most one a second
	fileDrops  uint64    // not noted in the file yet
	announce   *time.Timer
	rateTotal  atomic.Uint64
	fileTotal  atomic.Uint64
	linesTotal atomic.Uint64
}

// Ring is the stream's RAM ring.
func (s *Stream) Ring() *logring.Ring { return s.ring }

// Dropped returns how many lines the rate limit and a slow disk cost.
func (s *Stream) Dropped() (rate, file uint64) { return s.rateTotal.Load(), s.fileTotal.Load() }

// Lines returns how many lines were accepted.
func (s *Stream) Lines() uint64 { return s.linesTotal.Load() }

// Line records one line of output.
func (s *Stream) Line(t time.Time, text string, partial bool) bool {
	return s.lineAt(t, text, partial, SevInfo)
}

func (s *Stream) lineAt(t time.Time, text string, partial bool, sev int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limited {
		if !s.last.IsZero() {
			s.tokens = min(float64(s.burst), s.tokens+t.Sub(s.last).Seconds()*s.rate)
		}
		s.last = t
		if s.tokens < 1 {
			s.rateDrops++
			s.rateTotal.Add(1)
			if s.announce == nil {
				// Say so even if the flood ends with the drops: a second
				// from now (a one-shot timer, only while dropping).
				s.announce = time.AfterFunc(time.Second, s.announceLater)
			}
			return false
		}
		s.tokens--
	}
	if s.rateDrops > 0 && t.Sub(s.announced) >= time.Second {
		s.announceLocked(t)
	}
	s.linesTotal.Add(1)
	s.ring.Add(t, text, partial)
	flag := byte(logfile.FlagLine)
	if partial {
		flag = logfile.FlagPartial
	}
	s.fileLocked(t, flag, text)
	if r := s.remote; r != nil {
		r.Send(s.name, t, sev, text)
	}
	return true
}

func (s *Stream) announceLater() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.announce = nil
	// A line may have announced since this timer was set: at most one
	// note a second.
	if wait := time.Second - time.Since(s.announced); wait > 0 && s.rateDrops > 0 {
		s.announce = time.AfterFunc(wait, s.announceLater)
		return
	}
	s.announceLocked(time.Now())
}

// announceLocked writes the note for lines the rate limit dropped.
func (s *Stream) announceLocked(t time.Time) {
	if s.rateDrops == 0 {
		return
	}
	s.announced = t
	msg := fmt.Sprintf("corral: dropped %d lines (more than %g lines/s, burst %d)", s.rateDrops, s.rate, s.burst)
	s.log.Warn().Str("svc", s.name).Uint64("dropped", s.rateDrops).Msg("log: " + strings.TrimPrefix(msg, "corral: "))
	s.rateDrops = 0
	s.ring.AddNote(t, msg)
	s.fileLocked(t, logfile.FlagNote, msg)
	if r := s.remote; r != nil {
		r.Send(s.name, t, SevWarn, msg)
	}
}

func (s *Stream) fileLocked(t time.Time, flag byte, text string) {
	if s.file == nil {
		return
	}
	if s.fileDrops > 0 {
		note := fmt.Sprintf("corral: dropped %d lines here: the disk was too slow (`corral logs` may still have them)", s.fileDrops)
		if !s.file.Write(logfile.Record(t, logfile.FlagNote, note)) {
			s.fileDrops++
			s.fileTotal.Add(1)
			return
		}
		s.fileDrops = 0
	}
	if !s.file.Write(logfile.Record(t, flag, text)) {
		s.fileDrops++
		s.fileTotal.Add(1)
	}
}

func (s *Stream) close() {
	s.mu.Lock()
	if s.announce != nil {
		s.announce.Stop()
		s.announce = nil
	}
	s.announceLocked(time.Now())
	f := s.file
	s.file = nil
	s.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// ZerologWriter feeds corral's own JSON log lines into its stream.
type ZerologWriter struct{ S *Stream }

// Write takes one JSON event (zerolog writes each in one call).
func (w ZerologWriter) Write(p []byte) (int, error) {
	w.S.lineAt(time.Now(), strings.TrimSuffix(string(p), "\n"), false, SevInfo)
	return len(p), nil
}

// WriteLevel maps zerolog's level to a syslog severity.
func (w ZerologWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	sev := SevInfo
	switch {
	case l >= zerolog.ErrorLevel && l <= zerolog.PanicLevel:
		sev = SevError
	case l == zerolog.WarnLevel:
		sev = SevWarn
	case l == zerolog.DebugLevel || l == zerolog.TraceLevel:
		sev = SevDebug
	}
	w.S.lineAt(time.Now(), strings.TrimSuffix(string(p), "\n"), false, sev)
	return len(p), nil
}

// ErrNoLogFiles: lines were asked for from files and there is no [log] dir.
var ErrNoLogFiles = errors.New("no log files: corral.toml has no [log] dir, so only the RAM rings hold lines")

// FromFiles reads up to n of the newest lines of each stream (none: every
// stream with a file, also services of earlier boots or configurations)
// from the log files, merged by time and cut to the newest n overall.
// Lines come back with Seq 0: they are not the rings'.
func (l *Logs) FromFiles(names []string, n int) ([]logring.Line, error) {
	l.mu.Lock()
	d := l.o.Files
	l.mu.Unlock()
	if d == nil {
		return nil, ErrNoLogFiles
	}
	if len(names) == 0 {
		names = d.Streams()
	}
	var out []logring.Line
	for _, name := range names {
		es, err := d.ReadTail(name, n)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			out = append(out, logring.Line{Svc: name, Time: e.Time, Text: e.Text, Partial: e.Flag == logfile.FlagPartial, Note: e.Flag == logfile.FlagNote})
		}
	}
	slices.SortStableFunc(out, func(a, b logring.Line) int { return a.Time.Compare(b.Time) })
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out, nil
}
