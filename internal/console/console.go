// Package console is a writer that never blocks its callers.
//
// PID 1 logs to a serial console that may run at 115200 baud, or to a
// terminal nobody reads. A log call must never wait for it: writes are
// copied into a bounded queue drained by one goroutine; when the queue is
// full the write is dropped and counted, and the next write that fits is
// preceded by a line saying how many were lost.
package console

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
)

// Writer is a non-blocking, bounded, ordered writer.
type Writer struct {
	out     io.Writer
	q       chan []byte
	dropped atomic.Uint64
	done    chan struct{}
	once    sync.Once
	mu      sync.RWMutex
	closed  bool
}

// New starts a Writer over out holding at most queue pending writes.
func New(out io.Writer, queue int) *Writer {
	w := &Writer{out: out, q: make(chan []byte, queue), done: make(chan struct{})}
	go w.drain()
	return w
}

// Write queues a copy of p. It never blocks and never fails. After Close
// it writes straight through (the very last lines before a reboot).
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return w.out.Write(p)
	}
	b := append([]byte(nil), p...)
	select {
	case w.q <- b:
	default:
		w.dropped.Add(1)
	}
	return len(p), nil
}

// Dropped returns how many writes were dropped so far.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

func (w *Writer) drain() {
	defer close(w.done)
	var reported uint64
	for b := range w.q {
		if d := w.dropped.Load(); d != reported {
			fmt.Fprintf(w.out, "corral: console too slow: dropped %d lines\n", d-reported)
			reported = d
		}
		_, _ = w.out.Write(b)
	}
}

// Close flushes what is queued and stops the writer; later writes go
// straight to the output.
func (w *Writer) Close() {
	w.once.Do(func() {
		w.mu.Lock()
		w.closed = true
		close(w.q)
		w.mu.Unlock()
	})
	<-w.done
}
