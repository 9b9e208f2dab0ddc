// Package logring is a bounded ring of output lines, one per service.
//
// A writer never waits: when the ring is full the oldest lines go, and a
// counter says how many. Readers get copies. Followers (`corral logs -f`)
// read what came after the last sequence number they saw and sleep on
// Wait, a channel closed by the next Add: nothing polls.
package logring

import (
	"encoding/json"
	"sync"
	"time"
	"unicode/utf8"
)

// Line is one line of output (without its newline).
type Line struct {
	// Svc is the name of the stream the line belongs to (a service, or
	// "corral" for the supervisor's own log).
	Svc  string    `json:"svc,omitempty"`
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Text is the line's bytes, exactly as printed: it may hold any byte
	// but '\n'.
	Text string `json:"-"`
	// Partial is set when the line did not end with a newline: it was cut
	// (too long: the next line continues it) or the stream ended without
	// one. Concatenating a run of partial lines and the first whole one
	// after it gives back the original line.
	Partial bool `json:"partial,omitempty"`
	// Note marks a line corral wrote into the stream about the stream
	// ("dropped 12 lines"), not one the service printed.
	Note bool `json:"note,omitempty"`
}

// lineJSON is Line on the wire: text when it is valid UTF-8, otherwise the
// exact bytes as base64 in data (JSON strings cannot carry arbitrary bytes:
// encoding/json would replace them with U+FFFD).
type lineJSON struct {
	Svc     string    `json:"svc,omitempty"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Text    *string   `json:"text,omitempty"`
	Data    []byte    `json:"data,omitempty"`
	Partial bool      `json:"partial,omitempty"`
	Note    bool      `json:"note,omitempty"`
}

// MarshalJSON writes text, or data (base64) for bytes that are not UTF-8.
func (l Line) MarshalJSON() ([]byte, error) {
	j := lineJSON{Svc: l.Svc, Seq: l.Seq, Time: l.Time, Partial: l.Partial, Note: l.Note}
	if utf8.ValidString(l.Text) {
		t := l.Text
		j.Text = &t
	} else {
		j.Data = []byte(l.Text)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (l *Line) UnmarshalJSON(b []byte) error {
	var j lineJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*l = Line{Svc: j.Svc, Seq: j.Seq, Time: j.Time, Partial: j.Partial, Note: j.Note}
	if j.Text != nil {
		l.Text = *j.Text
	} else {
		l.Text = string(j.Data)
	}
	return nil
}

// Ring keeps the newest lines within a line and a byte budget. Its slots
// grow as lines come, up to maxLines: a quiet service costs next to
// nothing (a hundred services with full-size rings would cost megabytes).
type Ring struct {
	name  string
	onAdd func()

	mu       sync.Mutex
	lines    []Line
	maxLines int
	head     int // index of the oldest line
	n        int
	bytes    int
	maxBytes int
	seq      uint64
	dropped  uint64
	wake     chan struct{} // closed by the next Add; nil while nobody waits
}

// New returns a ring holding at most maxLines lines and maxBytes bytes of text.
func New(maxLines, maxBytes int) *Ring { return NewNamed("", maxLines, maxBytes, nil) }

// NewNamed is New for the stream called name; onAdd (may be nil) is called
// after every Add, outside the ring's lock, so one registry can wake
// followers of many rings.
func NewNamed(name string, maxLines, maxBytes int, onAdd func()) *Ring {
	if maxLines < 1 {
		maxLines = 1
	}
	return &Ring{name: name, onAdd: onAdd, maxLines: maxLines, maxBytes: maxBytes}
}

// Name is the stream's name.
func (r *Ring) Name() string { return r.name }

// Add appends a line, evicting the oldest ones if needed.
func (r *Ring) Add(t time.Time, text string, partial bool) {
	r.add(Line{Time: t, Text: text, Partial: partial})
}

// AddNote appends a line corral writes about the stream itself.
func (r *Ring) AddNote(t time.Time, text string) { r.add(Line{Time: t, Text: text, Note: true}) }

func (r *Ring) add(l Line) {
	r.mu.Lock()
	if r.n == len(r.lines) && len(r.lines) < r.maxLines {
		r.grow()
	}
	for r.n > 0 && (r.n == len(r.lines) || r.bytes+len(l.Text) > r.maxBytes) {
		r.bytes -= len(r.lines[r.head].Text)
		r.lines[r.head] = Line{}
		r.head = (r.head + 1) % len(r.lines)
		r.n--
		r.dropped++
	}
	r.seq++
	l.Seq, l.Svc = r.seq, r.name
	r.lines[(r.head+r.n)%len(r.lines)] = l
	r.n++
	r.bytes += len(l.Text)
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
	r.mu.Unlock()
	if r.onAdd != nil {
		r.onAdd()
	}
}

// Tail returns up to n of the newest lines, oldest first (n <= 0: all).
func (r *Ring) Tail(n int) []Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n <= 0 || n > r.n {
		n = r.n
	}
	out := make([]Line, n)
	for i := 0; i < n; i++ {
		out[i] = r.lines[(r.head+r.n-n+i)%len(r.lines)]
	}
	return out
}

// Since returns the lines after sequence number seq, oldest first, at most
// max of them (max <= 0: all), and how many lines after seq were already
// evicted before the reader got to them.
func (r *Ring) Since(seq uint64, max int) (lines []Line, lost uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.seq - uint64(r.n) + 1 // seq of lines[head]
	if r.n == 0 {
		oldest = r.seq + 1
	}
	if seq+1 < oldest {
		lost = oldest - seq - 1
		seq = oldest - 1
	}
	avail := int(r.seq - seq)
	if max > 0 && avail > max {
		avail = max
	}
	start := r.n - int(r.seq-seq)
	lines = make([]Line, avail)
	for i := range lines {
		lines[i] = r.lines[(r.head+start+i)%len(r.lines)]
	}
	return lines, lost
}

// Seq is the sequence number of the newest line (0 before the first).
func (r *Ring) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Wait returns a channel closed by the next Add.
func (r *Ring) Wait() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return r.wake
}

// Last returns the newest line's text, or "".
func (r *Ring) Last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return ""
	}
	return r.lines[(r.head+r.n-1)%len(r.lines)].Text
}

// Evicted returns how many lines were pushed out of the ring.
func (r *Ring) Evicted() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// grow doubles the slots (up to maxLines), keeping the order.
func (r *Ring) grow() {
	size := min(max(2*len(r.lines), 16), r.maxLines)
	lines := make([]Line, size)
	for i := 0; i < r.n; i++ {
		lines[i] = r.lines[(r.head+i)%len(r.lines)]
	}
	r.lines, r.head = lines, 0
}
