package logring

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func texts(ls []Line) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return out
}

func TestRingKeepsNewestWithinLineBudget(t *testing.T) {
	r := New(3, 1<<20)
	for i := 1; i <= 5; i++ {
		r.Add(time.Time{}, fmt.Sprint(i), false)
	}
	if got, want := fmt.Sprint(texts(r.Tail(0))), "[3 4 5]"; got != want {
		t.Errorf("Tail(0) = %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(texts(r.Tail(2))), "[4 5]"; got != want {
		t.Errorf("Tail(2) = %s, want %s", got, want)
	}
	if r.Evicted() != 2 {
		t.Errorf("Evicted = %d, want 2", r.Evicted())
	}
	if r.Last() != "5" {
		t.Errorf("Last = %q", r.Last())
	}
}

func TestRingByteBudget(t *testing.T) {
	r := New(100, 10)
	r.Add(time.Time{}, "aaaa", false)
	r.Add(time.Time{}, "bbbb", false)
	r.Add(time.Time{}, "cccc", false) // 12 bytes > 10: "aaaa" goes
	if got, want := fmt.Sprint(texts(r.Tail(0))), "[bbbb cccc]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// A line larger than the whole budget is still kept, alone.
	r.Add(time.Time{}, "0123456789abc", true)
	if got := r.Tail(0); len(got) != 1 || !got[0].Partial {
		t.Errorf("got %+v, want the one oversized partial line", got)
	}
}

func TestRingGrowsKeepingOrder(t *testing.T) {
	r := New(100, 1<<20)
	if cap(r.lines) != 0 {
		t.Errorf("a new ring holds %d slots, want none until lines come", cap(r.lines))
	}
	for i := 1; i <= 150; i++ {
		r.Add(time.Time{}, fmt.Sprint(i), false)
	}
	got := texts(r.Tail(0))
	if len(got) != 100 || got[0] != "51" || got[99] != "150" || len(r.lines) != 100 {
		t.Errorf("got %d lines %v..%v in %d slots", len(got), got[0], got[len(got)-1], len(r.lines))
	}
}

func TestSinceReportsLostLines(t *testing.T) {
	r := New(3, 1<<20)
	if got, lost := r.Since(0, 0); len(got) != 0 || lost != 0 {
		t.Fatalf("empty ring: %v, lost %d", got, lost)
	}
	for i := 1; i <= 5; i++ {
		r.Add(time.Time{}, fmt.Sprint(i), false)
	}
	got, lost := r.Since(1, 0) // 2 was evicted, 3 4 5 are there
	if fmt.Sprint(texts(got)) != "[3 4 5]" || lost != 1 {
		t.Errorf("Since(1) = %v, lost %d; want [3 4 5], lost 1", texts(got), lost)
	}
	got, lost = r.Since(3, 1)
	if fmt.Sprint(texts(got)) != "[4]" || lost != 0 {
		t.Errorf("Since(3, 1) = %v, lost %d", texts(got), lost)
	}
	if got, _ := r.Since(5, 0); len(got) != 0 {
		t.Errorf("Since(newest) = %v, want nothing", texts(got))
	}
}

func TestWaitIsClosedByTheNextAdd(t *testing.T) {
	r := New(3, 1<<20)
	w := r.Wait()
	select {
	case <-w:
		t.Fatal("closed before any Add")
	default:
	}
	r.Add(time.Time{}, "x", false)
	select {
	case <-w:
	case <-time.After(time.Second):
		t.Fatal("Add did not wake the waiter")
	}
}

func TestJSONKeepsEveryByte(t *testing.T) {
	for _, text := range []string{"plain", "caf\xc3\xa9", "\x00\xff\x1b[2Jbin\xfe", ""} {
		b, err := json.Marshal(Line{Seq: 1, Text: text, Partial: true})
		if err != nil {
			t.Fatal(err)
		}
		var back Line
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Text != text || !back.Partial {
			t.Errorf("%q -> %s -> %q", text, b, back.Text)
		}
	}
}
