package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/corral-init/corral/supervisor/api"
)

// cmdAnalyze is `corral analyze [SERVICE]`: the boot timeline of every
// service (queued, started, ready, relative to corral's start) and the
// critical chain to SERVICE (default: the service that was up last), as
// systemd-analyze critical-chain shows it.
func cmdAnalyze(args []string) int {
	fs, sock, js := clientFlags("analyze")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) > 1 {
		fmt.Fprintln(os.Stderr, "usage: corral analyze [--json] [SERVICE]")
		return exitUsage
	}
	rep, err := api.NewClient(*sock).Boot()
	if err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(analysis{BootReply: rep, Chain: criticalChain(rep, first(pos))})
	}
	printAnalysis(os.Stdout, rep, first(pos))
	return exitOK
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

type analysis struct {
	api.BootReply
	Chain []chainLink `json:"critical_chain"`
}

// chainLink is one service of the critical chain: when it was up
// (seconds after corral started) and how long its start took.
type chainLink struct {
	Name  string  `json:"name"`
	At    float64 `json:"ready_seconds"`
	Took  float64 `json:"start_seconds"`
	Depth int     `json:"depth"`
}

// criticalChain walks back from target (default: the last service up)
// through the dependency that was up last before it started: the one that
// held it back.
func criticalChain(rep api.BootReply, target string) []chainLink {
	by := map[string]api.BootService{}
	for _, s := range rep.Services {
		by[s.Name] = s
	}
	if target == "" {
		var last time.Time
		for _, s := range rep.Services {
			if s.Boot.Ready.After(last) {
				last, target = s.Boot.Ready, s.Name
			}
		}
	}
	var out []chainLink
	seen := map[string]bool{}
	for name, depth := target, 0; name != "" && !seen[name]; depth++ {
		seen[name] = true
		s, ok := by[name]
		if !ok || s.Boot.Ready.IsZero() {
			break
		}
		out = append(out, chainLink{Name: name, At: s.Boot.Ready.Sub(rep.Booted).Seconds(), Took: s.Boot.Ready.Sub(s.Boot.Started).Seconds(), Depth: depth})
		next, latest := "", time.Time{}
		for _, d := range append(slices.Clone(s.Requires), s.After...) {
			ds, ok := by[d]
			if ok && !ds.Boot.Ready.IsZero() && !ds.Boot.Ready.After(s.Boot.Started) && ds.Boot.Ready.After(latest) {
				next, latest = d, ds.Boot.Ready
			}
		}
		name = next
	}
	return out
}

func ms(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func printAnalysis(w io.Writer, rep api.BootReply, target string) {
	fmt.Fprintf(w, "corral started %s", rep.Booted.Local().Format("2006-01-02 15:04:05.000"))
	if rep.Uptime > 0 {
		fmt.Fprintf(w, ", %s after the kernel did", ms(time.Duration(rep.Uptime*float64(time.Second))))
	}
	fmt.Fprintln(w)
	svcs := slices.Clone(rep.Services)
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return "+" + ms(t.Sub(rep.Booted))
	}
	slices.SortStableFunc(svcs, func(a, b api.BootService) int {
		switch {
		case a.Boot.Started.IsZero() && !b.Boot.Started.IsZero():
			return 1
		case b.Boot.Started.IsZero() && !a.Boot.Started.IsZero():
			return -1
		}
		return a.Boot.Started.Compare(b.Boot.Started)
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tQUEUED\tSTARTED\tREADY\tSTART TOOK\tNOW")
	for _, s := range svcs {
		took := "-"
		if !s.Boot.Ready.IsZero() && !s.Boot.Started.IsZero() {
			took = ms(s.Boot.Ready.Sub(s.Boot.Started))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, at(s.Boot.Queued), at(s.Boot.Started), at(s.Boot.Ready), took, s.State)
	}
	tw.Flush()
	chain := criticalChain(rep, target)
	if len(chain) == 0 {
		fmt.Fprintln(w, "\nno critical chain: no service is up yet")
		return
	}
	fmt.Fprintln(w, "\ncritical chain (@ when it was up, + how long its start took):")
	for _, l := range chain {
		lead := ""
		if l.Depth > 0 {
			lead = fmt.Sprintf("%*s└─", 2*(l.Depth-1), "")
		}
		fmt.Fprintf(w, "%s%s @%s +%s\n", lead, l.Name, ms(time.Duration(l.At*float64(time.Second))), ms(time.Duration(l.Took*float64(time.Second))))
	}
}
