package main

import (
	"bytes"
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
