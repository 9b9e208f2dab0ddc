package console

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockingWriter blocks every write until released.
type blockingWriter struct {
	mu      sync.Mutex
	release chan struct{}
	buf     bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func TestWriteNeverBlocksAndCountsDrops(t *testing.T) {
	out := &blockingWriter{release: make(chan struct{})}
	w := New(out, 4)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			w.Write([]byte("line\n"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a stuck output")
	}
	if w.Dropped() < 90 {
		t.Errorf("dropped %d, want at least 90 of 100 with a queue of 4", w.Dropped())
	}
	close(out.release)
	for deadline := time.Now().Add(5 * time.Second); len(w.q) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	w.Write([]byte("after\n"))
	w.Close()
	got := out.buf.String()
	if !strings.Contains(got, "dropped") || !strings.HasSuffix(got, "after\n") {
		t.Errorf("output %q: want a drop notice and the last line", got)
	}
}
