package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/api"
	"github.com/corral-init/corral/supervisor/config"
)

// Exit codes of the client commands, for scripts (documented in the
// README).
const (
	exitOK        = 0
	exitFailed    = 1 // the request was refused, the service failed, the check found problems
	exitUsage     = 2
	exitNoCorral  = 3 // no corral is listening on the socket
	exitDenied    = 4 // the socket or the call is not for this user
	exitNoService = 5 // no such service
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
		fmt.Fprintln(os.Stderr, "corral: permission denied: the control socket is root's (or [api] read_group's); run this as root")
		return exitDenied
	}
	fmt.Fprintln(os.Stderr, "corral:", err)
	var se *api.StatusError
	switch {
	case errors.Is(err, api.ErrNotRunning):
		fmt.Fprintln(os.Stderr, "  (is corral running? point --socket or $CORRAL_SOCKET at its corral.sock)")
		return exitNoCorral
	case errors.As(err, &se) && se.Code == 403:
		fmt.Fprintln(os.Stderr, "  (run it as root; read-only commands also work for members of corral.toml's [api] read_group)")
		return exitDenied
	case errors.As(err, &se) && se.Code == 404 && strings.Contains(se.Msg, "no such service"):
		fmt.Fprintln(os.Stderr, "  (`corral status` lists the services)")
		return exitNoService
	}
	return exitFailed
}

func cmdCheck(args []string) int {
	fs := flag.NewFlagSet("corral check", flag.ContinueOnError)
	security := fs.String("security", "", "show the effective sandbox of this service")
	js := fs.Bool("json", false, "print JSON")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) > 1 {
		fmt.Fprintln(os.Stderr, "usage: corral check [--json] [--security SERVICE] [DIR]")
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
	if *js {
		out := struct {
			OK       bool              `json:"ok"`
			Services []string          `json:"services"`
			Disabled []config.Disabled `json:"disabled,omitempty"`
			Problems []string          `json:"problems,omitempty"`
		}{OK: len(cfg.Problems) == 0, Services: []string{}, Disabled: cfg.Disabled}
		for _, s := range cfg.Services {
			out.Services = append(out.Services, s.Name)
		}
		for _, p := range cfg.Problems {
			out.Problems = append(out.Problems, p.Error())
		}
		printJSON(out)
		if !out.OK {
			return exitFailed
		}
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
	printStatus(os.Stdout, rep, time.Now(), useColor(os.Stdout))
	return exitOK
}

// useColor: colour only for a person at a terminal (and not NO_COLOR).
func useColor(f *os.File) bool {
	return isTerminal(f) && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// paint colours a state name for a terminal.
func paint(on bool, state string) string {
	if !on {
		return state
	}
	code := ""
	switch state {
	case "running", "done":
		code = "32" // green
	case "failed":
		code = "1;31" // bold red
	case "backoff", "stopping", "starting", "reloading":
		code = "33" // yellow
	default:
		return state
	}
	return "\x1b[" + code + "m" + state + "\x1b[0m"
}

func printJSON(v any) int {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailed
	}
	return exitOK
}

// printStatus is the `corral status` table. Colour codes would confuse
// tabwriter's widths, so the state column is padded by hand.
func printStatus(w io.Writer, rep api.StatusReply, now time.Time, color bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	width := len("STATE")
	for _, s := range rep.Services {
		width = max(width, len(s.State.String()))
	}
	fmt.Fprintf(tw, "SERVICE\t%-*s  SINCE\tPID\tRESTARTS\tADDRESS\tMEMORY\tCPU\tLAST EXIT\tSTATUS\n", width, "STATE")
	for _, s := range rep.Services {
		st := s.State.String()
		fmt.Fprintf(tw, "%s\t%s%*s  %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Name, paint(color, st), width-len(st), "", ago(now, s.Since), dash(s.Pid),
			s.Restarts, orDash(s.Address), mem(s.MemoryBytes), cpu(s.CPUSeconds), orDash(s.LastExit), statusText(s))
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
	row("cpu", cpu(s.CPUSeconds))
	if s.Exits > 0 || s.OOMKills > 0 || s.WatchdogTimeouts > 0 {
		row("exits", fmt.Sprintf("%d (oom-killed %d, watchdog timeouts %d)", s.Exits, s.OOMKills, s.WatchdogTimeouts))
	}
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
	fs, sock, js := clientFlags(action)
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
			if *js {
				return printServiceJSON(c, name)
			}
			fmt.Printf("%s: %s\n", name, se.Msg)
			return exitOK
		}
		return clientErr(err)
	}
	if *noBlock {
		if *js {
			return printServiceJSON(c, name)
		}
		return exitOK
	}
	code := waitAction(c, name, action, asked, *timeout, *js)
	if *js {
		if c := printServiceJSON(c, name); c != exitOK {
			return c
		}
	}
	return code
}

func printServiceJSON(c *api.Client, name string) int {
	s, err := c.Service(name)
	if err != nil {
		return clientErr(err)
	}
	return printJSON(s)
}

// waitAction follows a service until the request has played out, and
// says how it ended: what systemctl does by default.
func waitAction(c *api.Client, name, action string, asked time.Time, timeout time.Duration, quiet bool) int {
	deadline := time.Now().Add(timeout)
	// Wake on the service's state changes; a slow tick covers the changes
	// before the stream was connected.
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	changed := make(chan struct{}, 1)
	go func() {
		_ = c.FollowEvents(ctx, 0, func(e api.EventItem) error {
			if e.Svc == name {
				select {
				case changed <- struct{}{}:
				default:
				}
			}
			return nil
		})
	}()
	out, errOut := io.Writer(os.Stdout), io.Writer(os.Stderr)
	if quiet {
		out, errOut = io.Discard, io.Discard
	}
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
		if !done {
			if by := blockedBy(c, s, action, asked); by != "" {
				fmt.Fprintf(errOut, "%s: %s: %s\n", name, st, by)
				return exitFailed
			}
		}
		if done && ok {
			pid := s.Pid
			if !up {
				pid = 0 // the last run's, not a process that is there
			}
			fmt.Fprintf(out, "%s: %s%s\n", name, st, pidNote(pid))
			return exitOK
		}
		if done {
			fmt.Fprintf(errOut, "%s: %s: %s\n", name, st, sanitize(s.Reason))
			fmt.Fprintf(errOut, "  (see `corral status %s` and `corral logs %s`)\n", name, name)
			return exitFailed
		}
		select {
		case <-changed:
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			why := ""
			if s.Reason != "" {
				why = " (" + sanitize(s.Reason) + ")"
			}
			fmt.Fprintf(errOut, "%s: still %s after %s%s; not waiting any longer\n", name, st, timeout.Round(100*time.Millisecond), why)
			return exitFailed
		}
	}
}

// blockedBy says why a request being waited for cannot play out any more
// ("" if nothing stops it): a later request overrode it, or (for a start)
// a requirement the service waits for failed or backs off again.
func blockedBy(c *api.Client, s api.Service, action string, asked time.Time) string {
	if by := supersededBy(s.Snapshot, action, asked); by != "" {
		return by + " since this " + action + " was asked for; not waiting for it"
	}
	if (action != "start" && action != "restart") || s.Waiting == "" {
		return ""
	}
	for _, r := range s.Requires {
		rs, err := c.Service(r)
		if err != nil {
			continue
		}
		if rst := rs.State.String(); rst == "failed" || rst == "backoff" && !rs.Since.Before(asked) {
			return fmt.Sprintf("%s; %s is %s: %s\n  (see `corral status %s` and `corral logs %s`)", s.Waiting, r, rst, sanitize(rs.Reason), r, r)
		}
	}
	return ""
}

// supersededBy says how a later request overrode the one being waited
// for ("" if none did): a start or restart during a stop, which goes on to
// starting, which a stop never does; a stop during a start or restart,
// which ends stopped, which they never do. A config reload's replacement
// of the service starts the story again: its own stop came before.
func supersededBy(s supervisor.Snapshot, action string, asked time.Time) string {
	by := ""
	for _, h := range s.History {
		switch {
		case h.Time.Before(asked):
		case h.Event == "reload" && h.To == "stopped":
			by = ""
		case action == "stop" && (h.To == "starting" || h.Event == "start" || h.Event == "restart"):
			// A start during the stop is recorded at once (stopping →
			// stopping, "will start again once stopped").
			by = "started again"
		case (action == "start" || action == "restart") && (h.To == "stopped" || h.Event == "stop"):
			by = "stopped"
		}
	}
	return by
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
	fs, sock, js := clientFlags("kill")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) < 1 || len(pos) > 2 {
		fmt.Fprintln(os.Stderr, "usage: corral kill SERVICE [SIGNAL]   (default TERM)")
		return exitUsage
	}
	sig := "TERM"
	if len(pos) == 2 {
		sig = pos[1]
	}
	if _, err := api.ParseSignal(sig); err != nil { // a usage error, running corral or not
		fmt.Fprintln(os.Stderr, "corral:", err)
		return exitUsage
	}
	if err := api.NewClient(*sock).Kill(pos[0], sig); err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(map[string]any{"service": pos[0], "signal": sig, "sent": true})
	}
	return exitOK
}

func cmdLogs(args []string) int {
	fs, sock, js := clientFlags("logs")
	n := fs.Int("n", 50, "number of lines (0: all the rings hold, up to 1000 lines / 256 KiB a service)")
	follow := fs.Bool("f", false, "follow: print new lines as they come, until interrupted")
	fs.BoolVar(follow, "follow", false, "same as -f")
	raw := fs.Bool("raw", false, "print the exact bytes one service printed, nothing added")
	files := fs.Bool("files", false, "read the log files ([log] dir) instead of the RAM rings: older lines, earlier boots")
	pos, ok := parseInterspersed(fs, args)
	if !ok || *n < 0 || (*raw && (len(pos) != 1 || *js)) || (*files && *follow) {
		fmt.Fprintln(os.Stderr, "usage: corral logs [-f | --files] [-n N] [--json | --raw] [SERVICE...]")
		fmt.Fprintln(os.Stderr, "  no SERVICE: every service and corral's own log, interleaved by time; --raw needs one SERVICE")
		return exitUsage
	}
	c := api.NewClient(*sock)
	p := newLinePrinter(os.Stdout, len(pos) != 1, *raw, *js, useColor(os.Stdout))
	if !*follow {
		get := c.LogsOf
		if *files {
			get = c.LogsFromFiles
		}
		rep, err := get(pos, *n)
		if err != nil {
			return clientErr(err)
		}
		if *js && !*follow {
			return printJSON(rep)
		}
		for _, l := range rep.Lines {
			p.line(api.LogItem{LogLine: l})
		}
		p.flush()
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()
	err := c.FollowLogs(ctx, pos, *n, func(it api.LogItem) error { return p.line(it) })
	p.flush()
	if err != nil && ctx.Err() == nil {
		return clientErr(err)
	}
	return exitOK
}

// linePrinter shows log lines: a time, the stream's name when there are
// several, the text with control characters escaped, and the parts of a
// cut line joined again. corral's own JSON lines are shown human.
type linePrinter struct {
	w       *bufio.Writer
	prefix  bool
	raw     bool
	js      bool
	color   bool
	pending map[string]*api.LogItem // a partial line waiting for its end
	human   zerolog.ConsoleWriter
}

func newLinePrinter(w io.Writer, prefix, raw, js, color bool) *linePrinter {
	p := &linePrinter{w: bufio.NewWriter(w), prefix: prefix, raw: raw, js: js, color: color, pending: map[string]*api.LogItem{}}
	p.human = zerolog.ConsoleWriter{Out: p.w, NoColor: !color, TimeFormat: "15:04:05.000", PartsExclude: []string{zerolog.TimestampFieldName}}
	return p
}

func (p *linePrinter) line(it api.LogItem) error {
	defer func() {
		if len(p.pending) == 0 {
			_ = p.w.Flush()
		}
	}()
	if p.js {
		b, err := json.Marshal(it.LogLine)
		if err != nil {
			return err
		}
		if it.Lost > 0 {
			b, _ = json.Marshal(struct {
				Svc  string `json:"svc"`
				Lost uint64 `json:"lost"`
			}{it.Svc, it.Lost})
		}
		p.w.Write(append(b, '\n'))
		return nil
	}
	if p.raw {
		if it.Lost > 0 || it.Note {
			return nil // notes are not the service's bytes
		}
		p.w.WriteString(it.Text)
		if !it.Partial {
			p.w.WriteByte('\n')
		}
		return nil
	}
	if it.Lost > 0 {
		p.print(it.Svc, time.Now(), fmt.Sprintf("-- %d lines of %s went by before they could be shown (this reader was too slow)", it.Lost, it.Svc), true)
		return nil
	}
	if prev := p.pending[it.Svc]; prev != nil {
		it.Text = prev.Text + it.Text
		it.Time = prev.Time
		delete(p.pending, it.Svc)
	}
	if it.Partial && len(it.Text) < 1<<20 {
		cp := it
		p.pending[it.Svc] = &cp
		return nil
	}
	p.print(it.Svc, it.Time, it.Text, it.Note)
	return nil
}

func (p *linePrinter) print(svc string, t time.Time, text string, note bool) {
	ts := t.Local().Format("15:04:05.000")
	pre := ""
	if p.prefix {
		pre = fmt.Sprintf("%-8s ", svc)
		if p.color {
			pre = "\x1b[36m" + pre + "\x1b[0m"
		}
	}
	switch {
	case note:
		msg := "-- " + sanitize(text)
		if p.color {
			msg = "\x1b[1;33m" + msg + "\x1b[0m"
		}
		fmt.Fprintf(p.w, "%s %s%s\n", ts, pre, msg)
	case svc == supervisor.CorralStream && strings.HasPrefix(text, "{"):
		fmt.Fprintf(p.w, "%s %s", ts, pre)
		if _, err := p.human.Write([]byte(text)); err != nil {
			fmt.Fprintf(p.w, "%s\n", sanitize(text))
		}
	default:
		fmt.Fprintf(p.w, "%s %s%s\n", ts, pre, sanitize(text))
	}
}

// flush prints lines still waiting for their end (a stream that ended
// without a newline), marked.
func (p *linePrinter) flush() {
	for svc, it := range p.pending {
		p.print(svc, it.Time, it.Text+" ⏎", it.Note)
	}
	clear(p.pending)
	_ = p.w.Flush()
}

func cmdEvents(args []string) int {
	fs, sock, js := clientFlags("events")
	n := fs.Int("n", 10, "show the last N state changes first (0: none)")
	noFollow := fs.Bool("no-follow", false, "print the last N and exit instead of following")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) > 1 || *n < 0 {
		fmt.Fprintln(os.Stderr, "usage: corral events [-n N] [--no-follow] [--json] [SERVICE]")
		return exitUsage
	}
	c := api.NewClient(*sock)
	color := useColor(os.Stdout)
	w := bufio.NewWriter(os.Stdout)
	show := func(e api.EventItem) error {
		if len(pos) == 1 && e.Svc != pos[0] && e.Lost == 0 {
			return nil
		}
		if *js {
			b, _ := json.Marshal(e)
			w.Write(append(b, '\n'))
		} else if e.Lost > 0 {
			fmt.Fprintf(w, "-- %d state changes went by before they could be shown\n", e.Lost)
		} else {
			pid := ""
			if e.Pid != 0 {
				pid = fmt.Sprintf(" pid %d", e.Pid)
			}
			fmt.Fprintf(w, "%s %-10s %-9s -> %s (%s)%s: %s\n", e.Time.Local().Format("15:04:05.000"), e.Svc, e.From, paint(color, e.To), e.Event, pid, sanitize(e.Reason))
		}
		return w.Flush()
	}
	if *noFollow {
		rep, err := c.Events(*n)
		if err != nil {
			return clientErr(err)
		}
		if *js {
			return printJSON(rep)
		}
		for _, e := range rep.Events {
			_ = show(api.EventItem{EventRecord: e})
		}
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, unix.SIGTERM)
	defer stop()
	if err := c.FollowEvents(ctx, *n, show); err != nil && ctx.Err() == nil {
		return clientErr(err)
	}
	return exitOK
}

// cmdReload is `corral reload` (the configuration) and `corral reload
// SERVICE` (one service's reload signal or command).
func cmdReload(args []string) int {
	fs, sock, js := clientFlags("reload")
	dry := fs.Bool("dry-run", false, "only show what a config reload would do")
	noBlock := fs.Bool("no-block", false, "do not wait for the services the reload starts")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait")
	pos, ok := parseInterspersed(fs, args)
	if !ok || len(pos) > 1 || (*dry && len(pos) == 1) {
		fmt.Fprintln(os.Stderr, "usage: corral reload [--dry-run] [--json]     re-read the configuration")
		fmt.Fprintln(os.Stderr, "       corral reload [--no-block] SERVICE    reload one service (its reload signal or command)")
		return exitUsage
	}
	if len(pos) == 1 {
		rest := []string{"--socket", *sock, "--timeout", timeout.String(), pos[0]}
		if *noBlock {
			rest = append(rest, "--no-block")
		}
		if *js {
			rest = append(rest, "--json")
		}
		return cmdAction("reload", rest)
	}
	c := api.NewClient(*sock)
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	asked := time.Now()
	rep, err := c.Reload(ctx, *dry)
	var se *api.StatusError
	if errors.As(err, &se) && len(se.Problems) > 0 {
		if *js {
			printJSON(api.ErrorReply{Error: se.Msg, Problems: se.Problems})
			return exitFailed
		}
		fmt.Fprintln(os.Stderr, "corral: reload rejected: the running services are untouched. Fix these, then run `corral reload` again:")
		for _, p := range se.Problems {
			fmt.Fprintln(os.Stderr, "  "+p)
		}
		return exitFailed
	}
	if err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(rep)
	}
	verb := map[bool]string{true: "would ", false: ""}[*dry]
	if rep.Empty() {
		fmt.Printf("no service changed (%d unchanged)\n", len(rep.Keep))
	}
	for _, l := range []struct {
		what  string
		names []string
	}{{"start", rep.Start}, {"restart", rep.Restart}, {"update", rep.Held}, {"stop", rep.Stop}} {
		for _, n := range l.names {
			note := ""
			if l.what == "update" {
				note = " (stopped by an operator: stays stopped; corral start " + n + " starts it)"
			}
			fmt.Printf("%s%-7s %s%s\n", verb, l.what, n, note)
		}
	}
	for _, n := range rep.Notes {
		fmt.Printf("note: %s\n", n)
	}
	if *dry || *noBlock {
		return exitOK
	}
	code := exitOK
	for _, n := range append(rep.Start, rep.Restart...) {
		if c := waitAction(c, n, "start", asked, time.Until(asked.Add(*timeout)), false); c != exitOK {
			code = c
		}
	}
	return code
}

func cmdSystem(action string, args []string) int {
	fs, sock, js := clientFlags(action)
	if fs.Parse(args) != nil || fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "usage: corral %s\n", action)
		return exitUsage
	}
	if err := api.NewClient(*sock).System(action); err != nil {
		return clientErr(err)
	}
	if *js {
		return printJSON(map[string]any{"action": action, "accepted": true})
	}
	fmt.Printf("%s: accepted; corral is stopping the services\n", action)
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

func cpu(sec *float64) string {
	switch {
	case sec == nil:
		return "-"
	case *sec < 60:
		return fmt.Sprintf("%.2fs", *sec)
	}
	return fmt.Sprintf("%dm%02ds", int(*sec)/60, int(*sec)%60)
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
