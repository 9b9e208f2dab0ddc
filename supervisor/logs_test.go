package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/corral-init/corral/internal/logfile"
)

func TestRateLimitDropsAndAnnounces(t *testing.T) {
	l := NewLogs(LogOptions{Rate: 10, Burst: 5, Log: zerolog.Nop()})
	s := l.Stream("noisy")
	t1 := time.Unix(1000, 0)
	for i := 0; i < 20; i++ { // 20 lines in the same instant: burst 5
		s.Line(t1, fmt.Sprint(i), false)
	}
	s.Line(t1.Add(time.Second), "after", false) // 10 tokens back
	for i := 0; i < 20; i++ {                   // more drops: announced a second later
		s.Line(t1.Add(time.Second), "x", false)
	}
	s.Line(t1.Add(1500*time.Millisecond), "later", false)
	s.Line(t1.Add(2100*time.Millisecond), "last", false)
	var got []string
	for _, ln := range s.Ring().Tail(0) {
		got = append(got, ln.Text)
	}
	want := "[0 1 2 3 4 corral: dropped 15 lines (more than 10 lines/s, burst 5) after x x x x later corral: dropped 16 lines (more than 10 lines/s, burst 5) last]"
	if fmt.Sprint(got) != want {
		t.Errorf("ring %v\nwant %s", got, want)
	}
	if rate, _ := s.Dropped(); rate != 31 {
		t.Errorf("dropped %d, want 31", rate)
	}
	// corral's own stream is never limited.
	c := l.Stream(CorralStream)
	for i := 0; i < 20; i++ {
		c.Line(t1, "x", false)
	}
	if n := len(c.Ring().Tail(0)); n != 20 {
		t.Errorf("corral's stream kept %d of 20", n)
	}
}

// Line says whether it kept the line (the console echoes only those), and
// a flood gets at most one note a second, from lines or from the timer.
func TestFloodNotesAtMostOnceASecond(t *testing.T) {
	l := NewLogs(LogOptions{Rate: 200, Burst: 10, Log: zerolog.Nop()})
	s := l.Stream("flood")
	kept, sent := 0, 0
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); sent++ {
		if s.Line(time.Now(), "spam", false) {
			kept++
		}
		if sent%64 == 0 {
			time.Sleep(time.Millisecond) // let the timer in now and then
		}
	}
	time.Sleep(1100 * time.Millisecond) // the last note
	var notes []time.Time
	lines := 0
	for _, ln := range s.Ring().Tail(0) {
		if strings.HasPrefix(ln.Text, "corral: dropped") {
			notes = append(notes, ln.Time)
		} else {
			lines++
		}
	}
	rate, _ := s.Dropped()
	if lines != kept || uint64(sent-kept) != rate || rate == 0 {
		t.Errorf("sent %d, Line kept %d, the ring holds %d, dropped %d", sent, kept, lines, rate)
	}
	if len(notes) < 2 {
		t.Fatalf("%d notes for a 2.5 s flood", len(notes))
	}
	for i := 1; i < len(notes); i++ {
		if d := notes[i].Sub(notes[i-1]); d < 999*time.Millisecond {
			t.Errorf("notes %d and %d only %v apart", i-1, i, d)
		}
	}
}

func TestDropsAreAnnouncedWhenTheFloodEnds(t *testing.T) {
	l := NewLogs(LogOptions{Rate: 1, Burst: 1, Log: zerolog.Nop()})
	s := l.Stream("x")
	now := time.Now()
	s.Line(now, "a", false)
	s.Line(now, "b", false) // dropped; nothing follows
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.Ring().Last(), "dropped 1 lines") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("no announcement; last line %q", s.Ring().Last())
}

func TestStreamFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	d, err := logfile.Open(logfile.Options{Dir: dir, FileSize: 1 << 20, Keep: 1, TotalSize: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLogs(LogOptions{Files: d, Log: zerolog.Nop()})
	s := l.Stream("web")
	long := strings.Repeat("L", 5000)
	s.Line(time.Now(), long[:4096], true)
	s.Line(time.Now(), long[4096:], false)
	s.Line(time.Now(), "bin\x00\xff\x1b", false)
	s.Line(time.Now(), "no newline", true)
	l.Close()
	b, err := os.ReadFile(filepath.Join(dir, "web.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, rec := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		_, flag, text, ok := logfile.ParseRecord(rec)
		if !ok {
			t.Fatalf("bad record %q", rec)
		}
		out.WriteString(text)
		if flag == logfile.FlagLine {
			out.WriteByte('\n')
		}
	}
	if want := long + "\nbin\x00\xff\x1b\nno newline"; out.String() != want {
		t.Errorf("file gives back %q", out.String())
	}
}
