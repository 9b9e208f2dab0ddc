package main

import (
	"fmt"
	"io"
	"sort"
	"time"
)

// A boot's timeline: when the milestones of the markers table happened,
// in seconds since qemu was started, by the host's clock (the console is
// read as it is written), with the kernel's own printk time for kernel
// lines.

type tlRow struct {
	Label  string
	At     time.Duration
	KTime  float64 // -1: not a kernel line
	Missed bool    // the milestone did not happen
}

// timeline collects the milestones of results, plus the qemu start and
// exit, in time order. Milestones that did not happen are listed last.
func timeline(results []result, lines []Line, exit time.Duration, exitNote string) []tlRow {
	rows := []tlRow{{Label: "qemu started", KTime: -1}}
	var missed []tlRow
	for _, r := range results {
		if r.Marker.Timeline == "" {
			continue
		}
		if r.Line < 0 {
			missed = append(missed, tlRow{Label: r.Marker.Timeline, KTime: -1, Missed: true})
			continue
		}
		row := tlRow{Label: r.Marker.Timeline, At: r.At, KTime: -1}
		if l := lines[r.Line]; l.isKernel() {
			row.KTime = l.KTime
		}
		if r.Marker.Name == mkKernel {
			// The console may print the first lines late (the Pi's UART
			// is set up well into the boot): place printk time 0.
			if at, ok := kernelEpoch(lines); ok {
				row.At, row.KTime = at, 0
			}
		}
		rows = append(rows, row)
	}
	if exit > 0 {
		rows = append(rows, tlRow{Label: "qemu exited" + exitNote, At: exit, KTime: -1})
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].At < rows[j].At })
	return append(rows, missed...)
}

// kernelEpoch estimates when, on the host's clock, the kernel's printk
// clock read 0: the earliest (arrival - printk time) of the kernel lines.
func kernelEpoch(lines []Line) (time.Duration, bool) {
	best, ok := time.Duration(0), false
	for _, l := range lines {
		if !l.isKernel() {
			continue
		}
		at := l.At - time.Duration(l.KTime*float64(time.Second))
		if !ok || at < best {
			best, ok = at, true
		}
	}
	return max(best, 0), ok
}

// printTimeline writes the timeline as a small table.
func printTimeline(w io.Writer, title string, rows []tlRow) {
	fmt.Fprintf(w, "  %-34s %9s %9s %9s\n", "timeline "+title, "host s", "+delta", "kernel s")
	var prev time.Duration
	for _, r := range rows {
		if r.Missed {
			fmt.Fprintf(w, "  %-34s %9s\n", r.Label, "-")
			continue
		}
		kt := ""
		if r.KTime >= 0 {
			kt = fmt.Sprintf("%.3f", r.KTime)
		}
		fmt.Fprintf(w, "  %-34s %9.2f %9.2f %9s\n", r.Label, r.At.Seconds(), (r.At - prev).Seconds(), kt)
		prev = r.At
	}
}
