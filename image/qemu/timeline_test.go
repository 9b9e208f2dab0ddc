package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTimeline(t *testing.T) {
	lines := []Line{
		// the Pi's UART comes up late: the first lines arrive at 2.5 s
		parseLine(2500*time.Millisecond, "[    0.000000] Booting Linux on physical CPU 0x0"),
		parseLine(2700*time.Millisecond, "[    2.108000] Run /init as init process"),
		parseLine(3300*time.Millisecond, `{"mode":"machine","pid":1,"message":"corral v1 starting (machine mode)"}`),
		parseLine(6500*time.Millisecond, `{"svc":"hello","from":"starting","to":"running","event":"ready","message":"running: READY=1"}`),
	}
	ms := []marker{
		{Name: mkKernel, Plain: "Booting Linux", Timeline: "kernel started"},
		{Name: mkInit, Plain: " as init process", Timeline: "kernel ran init"},
		{Name: mkBanner, JSON: bannerJSON, Timeline: "corral started"},
		{Name: "hello", JSON: []matcher{eq("svc", "hello"), eq("event", "ready")}, Timeline: "hello ready"},
		{Name: "bye", JSON: []matcher{eq("message", "bye")}, Timeline: "corral said bye"},
		{Name: "not in the timeline", Plain: "Booting"},
	}
	rows := timeline(evaluate(ms, lines, "raspi3b"), lines, 12*time.Second, " (status 0)")
	var labels []string
	for _, r := range rows {
		labels = append(labels, r.Label)
	}
	want := []string{"qemu started", "kernel started", "kernel ran init", "corral started", "hello ready", "qemu exited (status 0)", "corral said bye"}
	if strings.Join(labels, "|") != strings.Join(want, "|") {
		t.Fatalf("rows %q, want %q", labels, want)
	}
	// printk 0 is placed from the line that arrived with the least delay:
	// 2.7 s - 2.108 s.
	if got := rows[1].At; got != 592*time.Millisecond {
		t.Errorf("kernel started at %v, want 592ms", got)
	}
	if rows[2].KTime != 2.108 || rows[3].KTime != -1 {
		t.Errorf("kernel times %v %v", rows[2].KTime, rows[3].KTime)
	}
	if !rows[len(rows)-1].Missed {
		t.Error("bye did not happen but is not marked missed")
	}

	var b bytes.Buffer
	printTimeline(&b, "raspi3b", rows)
	out := b.String()
	for _, s := range []string{"timeline raspi3b", "kernel started                          0.59", "hello ready                             6.50      3.20", "corral said bye                            -"} {
		if !strings.Contains(out, s) {
			t.Errorf("timeline lacks %q:\n%s", s, out)
		}
	}
}

func TestJoinRuns(t *testing.T) {
	run := func(exit int, at ...float64) *bootRun {
		r := &bootRun{ExitCode: exit, Elapsed: 10 * time.Second}
		for _, s := range at {
			r.Lines = append(r.Lines, parseLine(time.Duration(s*float64(time.Second)), "x"))
		}
		return r
	}
	all := &bootRun{}
	if !all.join(run(0, 1, 9), 1, 3) || !all.join(run(0, 2), 2, 3) {
		t.Fatal("a run that exited 0 stopped the runs")
	}
	var got []string
	for _, l := range all.Lines {
		got = append(got, fmt.Sprintf("%.0f %s", l.At.Seconds(), l.Text))
	}
	want := []string{"1 x", "9 x", "10 " + runLine(2, 3), "12 x"}
	if strings.Join(got, "|") != strings.Join(want, "|") || all.Elapsed != 20*time.Second {
		t.Errorf("got %q after %s, want %q after 20s", got, all.Elapsed, want)
	}
	if all.join(run(1), 3, 3) || all.ExitCode != 1 || all.Err != nil {
		t.Errorf("the last run exited 1: got ok, exit %d, err %v; want the exit status, no error", all.ExitCode, all.Err)
	}
	mid := &bootRun{}
	if mid.join(run(1), 1, 3) || mid.Err == nil || !strings.Contains(mid.Err.Error(), "run 1 of 3") {
		t.Errorf("a middle run exited 1: err %v", mid.Err)
	}
}
