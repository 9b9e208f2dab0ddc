package logring

import (
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
