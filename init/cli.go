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
	if errors.Is(err, os.ErrPermission) {
		fmt.Fprintln(os.Stderr, "corral: permission denied: the control socket is root's; run this as root")
		return exitFailed
	}
	fmt.Fprintln(os.Stderr, "corral:", err)
	if errors.Is(err, api.ErrNotRunning) {
		fmt.Fprintln(os.Stderr, "  (is corral running? point --socket or $CORRAL_SOCKET at its corral.sock)")
		return exitNoCorral
	}
	return exitFailed
}

func cmdCheck(args []string) int {
	fs := flag.NewFlagSet("corral check", flag.ContinueOnError)
	security := fs.String("security", "", "show the effective sandbox of this service")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) > 1 {
		fmt.Fprintln(os.Stderr, "usage: corral check [--security SERVICE] [DIR]")
		return exitUsage
	}
	dir := "/etc/corral"
	if len(pos) == 1 {
		dir = pos[0]
	}
	cfg, err := config.Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "corral:", err)
		return exitFailed
	}
	if *security != "" {
		s := cfg.Service(*security)
		if s == nil {
			fmt.Fprintf(os.Stderr, "corral: no enabled service %q in %s\n", *security, dir)
			cfg.Report(os.Stderr)
			return exitFailed
		}
		printSecurity(os.Stdout, s)
		return exitOK
	}
	if !cfg.Report(os.Stdout) {
		return exitFailed
	}
	return exitOK
}

func cmdStatus(args []string) int {
	fs, sock, js := clientFlags("status")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) > 1 {
		fmt.Fprintln(os.Stderr, "usage: corral status [--json] [SERVICE]")
		return exitUsage
	}
	c := api.NewClient(*sock)
	if len(pos) == 1 {
		s, err := c.Service(pos[0])
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
		return sanitize(s.Waiting)
	case len(s.Degraded) > 0 && s.State.Up():
		return "DEGRADED: " + sanitize(strings.Join(s.Degraded, "; "))
	case !s.State.Up() && s.State.String() != "starting":
		// Not running: why, not a STATUS= left from when it was.
		return sanitize(s.Reason)
	case s.Status != "":
		return sanitize(s.Status)
	case s.State.String() == "running":
		return "-"
	}
	return sanitize(s.Reason)
}

func printService(w io.Writer, s api.Service, now time.Time) {
	since := ago(now, s.Since) + " ago"
	if since == "now ago" {
		since = "just now"
	}
	fmt.Fprintf(w, "%s: %s since %s (%s)\n", s.Name, s.State, s.Since.Format("15:04:05"), since)
	row := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(w, "  %-10s %s\n", k+":", v)
		}
	}
	row("pid", dash(s.Pid))
	row("restarts", fmt.Sprint(s.Restarts))
	row("last exit", s.LastExit)
	row("reason", sanitize(s.Reason))
	row("status", sanitize(s.Status))
	row("waiting", sanitize(s.Waiting))
	row("address", s.Address)
	row("memory", mem(s.MemoryBytes))
	row("cgroup", s.Cgroup)
	for _, d := range s.Degraded {
		row("DEGRADED", sanitize(d))
	}
	if len(s.History) > 0 {
		fmt.Fprintln(w, "  history:")
		for _, h := range s.History {
			fmt.Fprintf(w, "    %s  %-9s -> %-9s %s\n", h.Time.Format("15:04:05.000"), h.From, h.To, sanitize(h.Reason))
		}
	}
}

func cmdAction(action string, args []string) int {
	fs, sock, _ := clientFlags(action)
	noBlock := fs.Bool("no-block", false, "return once the request is accepted, without waiting for the service")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the service")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) != 1 {
		fmt.Fprintf(os.Stderr, "usage: corral %s [--no-block] [--timeout D] SERVICE\n", action)
		return exitUsage
	}
	name := pos[0]
	c := api.NewClient(*sock)
	asked := time.Now()
	if err := c.Action(name, action); err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && se.Code == 409 && (action == "start" || action == "stop") {
			// Already there: like systemctl, that is success.
			fmt.Printf("%s: %s\n", name, se.Msg)
			return exitOK
		}
		return clientErr(err)
	}
	if *noBlock {
		return exitOK
	}
	return waitAction(c, name, action, asked, *timeout)
}

// waitAction follows a service until the request has played out, and
// says how it ended: what systemctl does by default.
func waitAction(c *api.Client, name, action string, asked time.Time, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.Service(name)
		if err != nil {
			return clientErr(err)
		}
		st := s.State.String()
		fresh := !s.Since.Before(asked) // changed since the request
		up := st == "running" || st == "done"
		var done, ok bool
		switch action {
		case "stop":
			done, ok = st == "stopped" || st == "failed" || st == "done", true
		case "start":
			done, ok = up, true
		case "restart":
			done, ok = up && fresh, true
		case "reload":
			// A plain service was sent its signal; a notify one answers
			// RELOADING=1 ... READY=1.
			done, ok = !s.Notify || st == "running" && fresh, true
		}
		if !done && (st == "failed" || st == "backoff") && fresh {
			done, ok = true, false
		}
		if done && ok {
			fmt.Printf("%s: %s%s\n", name, st, pidNote(s.Pid))
			return exitOK
		}
		if done {
			fmt.Fprintf(os.Stderr, "%s: %s: %s\n", name, st, sanitize(s.Reason))
			return exitFailed
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "%s: still %s after %s (%s); not waiting any longer\n", name, st, timeout, sanitize(s.Reason))
			return exitFailed
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pidNote(pid int) string {
	if pid == 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

// parseInterspersed parses flags anywhere among the arguments
// (`corral logs web -n 5` as well as `corral logs -n 5 web`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		if fs.NArg() == 0 {
			return pos, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// sanitize makes service-provided text safe for a terminal: control
// characters (escape sequences that could clear the screen or forge a log
// line) are shown as visible escapes, the text itself is kept.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func cmdKill(args []string) int {
	fs, sock, _ := clientFlags("kill")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) < 1 || len(pos) > 2 {
		fmt.Fprintln(os.Stderr, "usage: corral kill SERVICE [SIGNAL]   (default TERM)")
		return exitUsage
	}
	sig := "TERM"
	if len(pos) == 2 {
		sig = pos[1]
	}
	if err := api.NewClient(*sock).Kill(pos[0], sig); err != nil {
		return clientErr(err)
	}
	return exitOK
}

func cmdLogs(args []string) int {
	fs, sock, js := clientFlags("logs")
	n := fs.Int("n", 50, "number of lines (0: all the ring holds, up to 1000 lines / 256 KiB)")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) != 1 || *n < 0 {
		fmt.Fprintln(os.Stderr, "usage: corral logs [-n N] SERVICE")
		return exitUsage
	}
	rep, err := api.NewClient(*sock).Logs(pos[0], *n)
	if err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(rep)
	}
	for _, l := range rep.Lines {
		fmt.Printf("%s %s\n", l.Time.Format("15:04:05.000"), sanitize(l.Text))
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
