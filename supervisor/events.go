package supervisor

import (
	"sync"
	"time"
)

// EventRecord is one state change of one service, as `corral events`
// streams it.
type EventRecord struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Svc    string    `json:"svc"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Event  string    `json:"event"`
	Reason string    `json:"reason,omitempty"`
	Pid    int       `json:"pid,omitempty"`
}

// eventFeed keeps the newest state changes of every service, for
// followers: they read what came after the last seq they saw and sleep on
// wait, closed by the next add.
type eventFeed struct {
	mu   sync.Mutex
	buf  []EventRecord // ring
	head int
	n    int
	seq  uint64
	wake chan struct{}
}

func newEventFeed(size int) *eventFeed { return &eventFeed{buf: make([]EventRecord, size)} }

func (f *eventFeed) add(r EventRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	r.Seq = f.seq
	if f.n == len(f.buf) {
		f.head = (f.head + 1) % len(f.buf)
		f.n--
	}
	f.buf[(f.head+f.n)%len(f.buf)] = r
	f.n++
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// since returns the records after seq (at most the newest n if n > 0 and
// seq is 0) and how many after seq were already overwritten.
func (f *eventFeed) since(seq uint64, n int) ([]EventRecord, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	oldest := f.seq - uint64(f.n) + 1
	var lost uint64
	if seq+1 < oldest {
		if seq != 0 {
			lost = oldest - seq - 1
		}
		seq = oldest - 1
	}
	avail := int(f.seq - seq)
	skip := 0
	if n > 0 && avail > n {
		skip = avail - n
	}
	out := make([]EventRecord, 0, avail-skip)
	start := f.n - avail
	for i := skip; i < avail; i++ {
		out = append(out, f.buf[(f.head+start+i)%len(f.buf)])
	}
	return out, lost
}

func (f *eventFeed) wait() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wake == nil {
		f.wake = make(chan struct{})
	}
	return f.wake
}

// Events returns the state changes after seq (seq 0: the newest n, n <= 0
// all that are kept), and how many after seq were already overwritten.
func (s *Supervisor) Events(seq uint64, n int) ([]EventRecord, uint64) { return s.events.since(seq, n) }

// EventsWait returns a channel closed by the next state change.
func (s *Supervisor) EventsWait() <-chan struct{} { return s.events.wait() }
