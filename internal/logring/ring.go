// Package logring is a bounded ring of output lines, one per service.
//
// A writer never waits: when the ring is full the oldest lines go, and a
// counter says how many. Readers get copies.
package logring

import (
	"sync"
	"time"
)

// Line is one line of output (without its newline).
type Line struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
	// Partial is set when the line was cut (too long, or the stream ended
	// without a newline); the next line continues it.
	Partial bool `json:"partial,omitempty"`
}

// Ring keeps the newest lines within a line and a byte budget. Its slots
// grow as lines come, up to maxLines: a quiet service costs next to
// nothing (a hundred services with full-size rings would cost megabytes).
type Ring struct {
	mu       sync.Mutex
	lines    []Line
	maxLines int
	head     int // index of the oldest line
	n        int
	bytes    int
	maxBytes int
	seq      uint64
	dropped  uint64
}

// New returns a ring holding at most maxLines lines and maxBytes bytes of text.
func New(maxLines, maxBytes int) *Ring {
	if maxLines < 1 {
		maxLines = 1
	}
	return &Ring{maxLines: maxLines, maxBytes: maxBytes}
}

// Add appends a line, evicting the oldest ones if needed.
func (r *Ring) Add(t time.Time, text string, partial bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == len(r.lines) && len(r.lines) < r.maxLines {
		r.grow()
	}
	for r.n > 0 && (r.n == len(r.lines) || r.bytes+len(text) > r.maxBytes) {
		r.bytes -= len(r.lines[r.head].Text)
		r.lines[r.head] = Line{}
		r.head = (r.head + 1) % len(r.lines)
		r.n--
		r.dropped++
	}
	r.seq++
	r.lines[(r.head+r.n)%len(r.lines)] = Line{Seq: r.seq, Time: t, Text: text, Partial: partial}
	r.n++
	r.bytes += len(text)
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
