package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/corral-init/corral/supervisor/api"
	"github.com/corral-init/corral/supervisor/config"
)

// Exit codes of the client commands, for scripts.
const (
	exitOK       = 0
	exitFailed   = 1 // the request was refused or the check found problems
	exitUsage    = 2
	exitNoCorral = 3 // no corral is listening on the socket
)

func defaultSocket() string {
	if s := os.Getenv("CORRAL_SOCKET"); s != "" {
		return s
	}
	return "/run/corral/corral.sock"
}

func clientFlags(name string) (*flag.FlagSet, *string, *bool) {
	fs := flag.NewFlagSet("corral "+name, flag.ContinueOnError)
	sock := fs.String("socket", defaultSocket(), "control socket of the running corral")
	js := fs.Bool("json", false, "print JSON")
	return fs, sock, js
}

// clientErr prints an error the way a person can act on it.
func clientErr(err error) int {
	fmt.Fprintln(os.Stderr, "corral:", err)
	if errors.Is(err, api.ErrNotRunning) {
		fmt.Fprintln(os.Stderr, "  (is corral running? point --socket or $CORRAL_SOCKET at its corral.sock)")
		return exitNoCorral
	}
	return exitFailed
}

func cmdCheck(args []string) int {
	dir := "/etc/corral"
	if len(args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: corral check [DIR]")
		return exitUsage
	}
	if len(args) == 1 {
		dir = args[0]
	}
	cfg, err := config.Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "corral:", err)
		return exitUsage
	}
	if !cfg.Report(os.Stdout) {
		return exitFailed
	}
	return exitOK
}

func cmdStatus(args []string) int {
	fs, sock, js := clientFlags("status")
	if fs.Parse(args) != nil || fs.NArg() > 1 {
		return exitUsage
	}
	c := api.NewClient(*sock)
	if fs.NArg() == 1 {
		s, err := c.Service(fs.Arg(0))
		if err != nil {
			return clientErr(err)
		}
		if *js {
			return printJSON(s)
		}
		printService(os.Stdout, s, time.Now())
		return exitOK
	}
	rep, err := c.Status()
	if err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(rep)
	}
	printStatus(os.Stdout, rep, time.Now())
	return exitOK
}

func printJSON(v any) int {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailed
	}
	return exitOK
}

// printStatus is the `corral status` table.
func printStatus(w io.Writer, rep api.StatusReply, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSTATE\tSINCE\tPID\tRESTARTS\tADDRESS\tMEMORY\tLAST EXIT\tSTATUS")
	for _, s := range rep.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.State, ago(now, s.Since), dash(s.Pid),
			s.Restarts, orDash(s.Address), mem(s.MemoryBytes), orDash(s.LastExit), statusText(s))
	}
	tw.Flush()
	for _, d := range rep.Disabled {
		fmt.Fprintf(w, "disabled: %s: %s\n", d.Name, d.Reason)
	}
}

// statusText is what the service says about itself (STATUS=), or else why
// it is where it is.
func statusText(s api.Service) string {
	switch {
	case s.Waiting != "" && !s.State.Up():
		return s.Waiting
	case s.Status != "":
		return s.Status
	case s.State.String() == "running":
		return "-"
	}
	return s.Reason
}

func printService(w io.Writer, s api.Service, now time.Time) {
	fmt.Fprintf(w, "%s: %s since %s (%s ago)\n", s.Name, s.State, s.Since.Format("15:04:05"), ago(now, s.Since))
	row := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(w, "  %-10s %s\n", k+":", v)
		}
	}
	row("pid", dash(s.Pid))
	row("restarts", fmt.Sprint(s.Restarts))
	row("last exit", s.LastExit)
	row("reason", s.Reason)
	row("status", s.Status)
	row("waiting", s.Waiting)
	row("address", s.Address)
	row("memory", mem(s.MemoryBytes))
	row("cgroup", s.Cgroup)
	if len(s.History) > 0 {
		fmt.Fprintln(w, "  history:")
		for _, h := range s.History {
			fmt.Fprintf(w, "    %s  %-8s -> %-8s %s\n", h.Time.Format("15:04:05.000"), h.From, h.To, h.Reason)
		}
	}
}

func cmdAction(action string, args []string) int {
	fs, sock, _ := clientFlags(action)
	if fs.Parse(args) != nil || fs.NArg() != 1 {
		fmt.Fprintf(os.Stderr, "usage: corral %s SERVICE\n", action)
		return exitUsage
	}
	if err := api.NewClient(*sock).Action(fs.Arg(0), action); err != nil {
		return clientErr(err)
	}
	return exitOK
}

func cmdKill(args []string) int {
	fs, sock, _ := clientFlags("kill")
	if fs.Parse(args) != nil || fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(os.Stderr, "usage: corral kill SERVICE [SIGNAL]   (default TERM)")
		return exitUsage
	}
	sig := "TERM"
	if fs.NArg() == 2 {
		sig = fs.Arg(1)
	}
	if err := api.NewClient(*sock).Kill(fs.Arg(0), sig); err != nil {
		return clientErr(err)
	}
	return exitOK
}

func cmdLogs(args []string) int {
	fs, sock, js := clientFlags("logs")
	n := fs.Int("n", 50, "number of lines")
	if fs.Parse(args) != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: corral logs [-n N] SERVICE")
		return exitUsage
	}
	rep, err := api.NewClient(*sock).Logs(fs.Arg(0), *n)
	if err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(rep)
	}
	for _, l := range rep.Lines {
		fmt.Printf("%s %s\n", l.Time.Format("15:04:05.000"), l.Text)
	}
	return exitOK
}

func cmdSystem(action string, args []string) int {
	fs, sock, _ := clientFlags(action)
	if fs.Parse(args) != nil || fs.NArg() != 0 {
		return exitUsage
	}
	if err := api.NewClient(*sock).System(action); err != nil {
		return clientErr(err)
	}
	return exitOK
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func dash(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mem(n *int64) string {
	if n == nil {
		return "-"
	}
	v := float64(*n)
	for _, u := range []string{"B", "K", "M", "G"} {
		if v < 1024 || u == "G" {
			if u == "B" {
				return fmt.Sprintf("%.0f%s", v, u)
			}
			return fmt.Sprintf("%.1f%s", v, u)
		}
		v /= 1024
	}
	return strings.TrimSpace(fmt.Sprint(*n))
}
