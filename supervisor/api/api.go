// Package api is corral's control API: HTTP and JSON over a unix socket
// (/run/corral/corral.sock), so `curl --unix-socket` works. It speaks
// HTTP/1.1 through internal/http1, not net/http, which would bring TLS and
// HTTP/2 into PID 1 for one local socket.
//
// # Who may call
//
// Every connection's peer credentials come from the kernel (SO_PEERCRED,
// SO_PEERGROUPS). Root may call everything. With [api] read_group, the
// socket is mode 0660 and owned by that group, and its members may make
// the read-only calls (GET); everything that changes something (POST)
// stays root's. Anyone else gets 403. Without read_group the socket is
// mode 0600.
//
// # Endpoints
//
//	GET  /v1/services                    every service's status (+ disabled ones)
//	GET  /v1/services/{name}             one service, with its recent transitions
//	GET  /v1/services/{name}/logs?n=N[&follow=1]   its newest N lines [then new ones]
//	GET  /v1/logs?svc=A&svc=B&n=N[&follow=1]       several streams, merged by time;
//	                                     no svc: every service and corral's own
//	GET  /v1/logs?...&files=1            the same from the log files ([log] dir):
//	                                     older lines, earlier boots
//	GET  /v1/events?n=N[&follow=1]       state changes [then new ones, as they happen]
//	GET  /v1/boot                        the boot timeline (corral analyze)
//	POST /v1/services/{name}/{action}    start, stop, restart, reload
//	POST /v1/services/{name}/kill?signal=SIG   signal the main process (default TERM)
//	POST /v1/reload[?dry_run=1]          re-read the configuration [only plan]
//	POST /v1/system/{action}             reboot, poweroff, halt
//
// With follow=1 the answer is a stream of JSON objects, one per line
// (application/x-ndjson), that ends when the client goes away or corral
// shuts down. A follower that falls behind the ring gets a line with
// "lost": N instead of the lines it missed. Nothing polls: a follower
// sleeps until the next line or state change.
package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/http1"
	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/config"
)

// Service is one service's status as the API returns it.
type Service struct {
	supervisor.Snapshot
	MemoryBytes *int64   `json:"memory_bytes,omitempty"`
	CPUSeconds  *float64 `json:"cpu_seconds,omitempty"`
}

// StatusReply is GET /v1/services.
type StatusReply struct {
	Services []Service         `json:"services"`
	Disabled []config.Disabled `json:"disabled,omitempty"`
}

// LogsReply is GET /v1/services/{name}/logs and /v1/logs.
type LogsReply struct {
	Lines []supervisor.LogLine `json:"lines"`
}

// EventsReply is GET /v1/events.
type EventsReply struct {
	Events []supervisor.EventRecord `json:"events"`
}

// EventItem is one object of an event stream (follow=1).
type EventItem struct {
	supervisor.EventRecord
	Lost uint64 `json:"lost,omitempty"`
}

// BootReply is GET /v1/boot.
type BootReply struct {
	// Booted is when the supervisor started; Uptime is the kernel's uptime
	// then (how long the kernel and early boot took, in machine mode).
	Booted   time.Time     `json:"booted"`
	Uptime   float64       `json:"uptime_at_start_seconds"`
	Services []BootService `json:"services"`
}

// BootService is one service's boot timeline.
type BootService struct {
	Name     string               `json:"name"`
	State    supervisor.State     `json:"state"`
	Boot     supervisor.BootTimes `json:"boot"`
	Requires []string             `json:"requires,omitempty"`
	After    []string             `json:"after,omitempty"`
}

// ReloadReply is POST /v1/reload.
type ReloadReply struct {
	supervisor.Plan
	DryRun bool `json:"dry_run,omitempty"`
}

// ErrorReply is the body of every non-2xx answer.
type ErrorReply struct {
	Error string `json:"error"`
	// Problems are a rejected configuration's, one per line.
	Problems []string `json:"problems,omitempty"`
}

// Server serves the API for one supervisor.
type Server struct {
	Sup *supervisor.Supervisor
	// System is called for POST /v1/system/{action}.
	System func(action string) error
	// Reload re-reads the configuration and applies it (or only plans it).
	Reload func(ctx context.Context, dryRun bool) (supervisor.Plan, error)
	// ReadGroup may make read-only calls (-1: root only).
	ReadGroup int
	// ReadGroupName names it in messages.
	ReadGroupName string
	// Uptime is the kernel's uptime when corral started.
	Uptime time.Duration

	srv    *http1.Server
	ln     net.Listener
	cancel context.CancelFunc
}

type ctxKey struct{}

// Listen binds the socket (replacing a stale one) and serves in the
// background. With a read group the socket is 0660 root:group, else 0600.
func (s *Server) Listen(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if s.ReadGroup >= 0 {
		if err := os.Chown(path, 0, s.ReadGroup); err != nil {
			ln.Close()
			return fmt.Errorf("give socket %s to group %d: %w", path, s.ReadGroup, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			ln.Close()
			return fmt.Errorf("chmod 0660 %s: %w", path, err)
		}
	}
	s.ln = ln
	mux := http1.NewServeMux()
	mux.HandleFunc("GET /v1/services", s.list)
	mux.HandleFunc("GET /v1/services/{name}", s.one)
	mux.HandleFunc("GET /v1/services/{name}/logs", s.serviceLogs)
	mux.HandleFunc("GET /v1/logs", s.logs)
	mux.HandleFunc("GET /v1/events", s.eventsHandler)
	mux.HandleFunc("GET /v1/boot", s.boot)
	mux.HandleFunc("POST /v1/services/{name}/kill", s.kill)
	mux.HandleFunc("POST /v1/services/{name}/{action}", s.action)
	mux.HandleFunc("POST /v1/reload", s.reload)
	mux.HandleFunc("POST /v1/system/{action}", s.system)
	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.srv = &http1.Server{
		Handler:           s.authorize(mux),
		ReadHeaderTimeout: 5 * time.Second,
		// Streams end with the server: Close cancels this context.
		BaseContext: func(net.Listener) context.Context { return base },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, peerOf(c))
		},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Close ends the streams, stops serving and removes the socket.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

func (s *Server) authorize(h http1.Handler) http1.Handler {
	return http1.HandlerFunc(func(w http1.ResponseWriter, r *http1.Request) {
		p, _ := r.Context().Value(ctxKey{}).(Peer)
		switch {
		case p.UID == 0:
		case s.ReadGroup >= 0 && p.InGroup(s.ReadGroup) && (r.Method == http1.MethodGet || r.Method == http1.MethodHead):
		case s.ReadGroup >= 0 && p.InGroup(s.ReadGroup):
			writeErr(w, http1.StatusForbidden, fmt.Errorf("permission denied: uid %d may only read (group %s); %s %s needs root", p.UID, s.groupName(), r.Method, r.URL.Path))
			return
		case s.ReadGroup >= 0:
			writeErr(w, http1.StatusForbidden, fmt.Errorf("permission denied: uid %d is not root and not in group %s", p.UID, s.groupName()))
			return
		default:
			writeErr(w, http1.StatusForbidden, fmt.Errorf("permission denied: uid %d is not root", p.UID))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) groupName() string {
	if s.ReadGroupName != "" {
		return s.ReadGroupName
	}
	return strconv.Itoa(s.ReadGroup)
}

// withReadings adds the live cgroup readings.
func withReadings(s supervisor.Snapshot) Service {
	out := Service{Snapshot: s}
	if n, ok := s.MemoryBytes(); ok {
		out.MemoryBytes = &n
	}
	if d, ok := s.CPUTime(); ok {
		sec := d.Seconds()
		out.CPUSeconds = &sec
	}
	return out
}

func (s *Server) list(w http1.ResponseWriter, r *http1.Request) {
	rep := StatusReply{Services: []Service{}}
	for _, snap := range s.Sup.Status() {
		snap.History = nil
		rep.Services = append(rep.Services, withReadings(snap))
	}
	rep.Disabled = s.Sup.Disabled()
	writeJSON(w, http1.StatusOK, rep)
}

func (s *Server) one(w http1.ResponseWriter, r *http1.Request) {
	snap, err := s.Sup.Service(r.PathValue("name"))
	if err != nil {
		writeErr(w, http1.StatusNotFound, err)
		return
	}
	writeJSON(w, http1.StatusOK, withReadings(snap))
}

func (s *Server) serviceLogs(w http1.ResponseWriter, r *http1.Request) {
	s.streamLogs(w, r, []string{r.PathValue("name")})
}

func (s *Server) logs(w http1.ResponseWriter, r *http1.Request) {
	s.streamLogs(w, r, r.URL.Query()["svc"])
}

// maxBatch bounds what one wake-up of a follower reads per stream.
const maxBatch = 1000

func (s *Server) streamLogs(w http1.ResponseWriter, r *http1.Request, names []string) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	all := len(names) == 0
	reg := s.Sup.LogStreams()
	if q.Get("files") == "1" || q.Get("files") == "true" {
		// From the files: older lines, earlier boots, services that are gone.
		if follow {
			writeErr(w, http1.StatusBadRequest, errors.New("files=1 reads what is on disk; it cannot follow (follow the rings instead)"))
			return
		}
		lines, err := reg.FromFiles(names, n)
		switch {
		case errors.Is(err, supervisor.ErrNoLogFiles):
			writeErr(w, http1.StatusNotFound, err)
		case err != nil:
			writeErr(w, http1.StatusInternalServerError, err)
		default:
			if lines == nil {
				lines = []supervisor.LogLine{}
			}
			writeJSON(w, http1.StatusOK, LogsReply{Lines: lines})
		}
		return
	}
	for _, name := range names {
		if _, ok := reg.Get(name); ok || name == supervisor.CorralStream {
			continue
		}
		if _, err := s.Sup.Service(name); err != nil {
			writeErr(w, http1.StatusNotFound, err)
			return
		}
	}
	sources := func() []string {
		if all {
			return reg.Names()
		}
		return names
	}
	// The first answer: the newest n lines over all sources, by time.
	cursor := map[string]uint64{}
	var first []supervisor.LogLine
	for _, name := range sources() {
		st, ok := reg.Get(name)
		if !ok {
			continue
		}
		lines, _ := st.Ring().Since(0, 0)
		if n > 0 && len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		if len(lines) > 0 {
			cursor[name] = lines[len(lines)-1].Seq
		}
		first = append(first, lines...)
	}
	sortLines(first)
	if n > 0 && len(first) > n {
		first = first[len(first)-n:]
	}
	if !follow {
		if first == nil {
			first = []supervisor.LogLine{}
		}
		writeJSON(w, http1.StatusOK, LogsReply{Lines: first})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http1.StatusOK)
	enc := json.NewEncoder(w)
	for _, l := range first {
		if enc.Encode(l) != nil {
			return
		}
	}
	for {
		if w.Flush() != nil {
			return
		}
		wake := reg.Wait() // before reading: a line after the read wakes us
		var batch []supervisor.LogLine
		var notes []lostNote
		for _, name := range sources() {
			st, ok := reg.Get(name)
			if !ok {
				continue
			}
			lines, lost := st.Ring().Since(cursor[name], maxBatch)
			if lost > 0 {
				notes = append(notes, lostNote{Svc: name, Lost: lost})
			}
			if len(lines) > 0 {
				cursor[name] = lines[len(lines)-1].Seq
				batch = append(batch, lines...)
			}
		}
		for _, nt := range notes {
			if enc.Encode(nt) != nil {
				return
			}
		}
		sortLines(batch)
		for _, l := range batch {
			if enc.Encode(l) != nil {
				return
			}
		}
		if len(batch) >= maxBatch {
			continue // more is waiting: do not sleep
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}

// lostNote tells a follower that lines of a stream were overwritten before
// it read them.
type lostNote struct {
	Svc  string `json:"svc"`
	Lost uint64 `json:"lost"`
}

func sortLines(ls []supervisor.LogLine) {
	slices.SortStableFunc(ls, func(a, b supervisor.LogLine) int { return a.Time.Compare(b.Time) })
}

func (s *Server) eventsHandler(w http1.ResponseWriter, r *http1.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	if follow && q.Get("n") == "" {
		n = 0
	}
	var evs []supervisor.EventRecord
	var last uint64
	if n > 0 || !follow {
		evs, _ = s.Sup.Events(0, n)
	} else {
		// Only what happens from now on.
		cur, _ := s.Sup.Events(0, 1)
		if len(cur) > 0 {
			last = cur[0].Seq
		}
	}
	if len(evs) > 0 {
		last = evs[len(evs)-1].Seq
	}
	if !follow {
		if evs == nil {
			evs = []supervisor.EventRecord{}
		}
		writeJSON(w, http1.StatusOK, EventsReply{Events: evs})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http1.StatusOK)
	enc := json.NewEncoder(w)
	for _, e := range evs {
		if enc.Encode(EventItem{EventRecord: e}) != nil {
			return
		}
	}
	for {
		if w.Flush() != nil {
			return
		}
		wake := s.Sup.EventsWait()
		more, lost := s.Sup.Events(last, 0)
		if lost > 0 {
			if enc.Encode(struct {
				Lost uint64 `json:"lost"`
			}{lost}) != nil {
				return
			}
		}
		for _, e := range more {
			if enc.Encode(EventItem{EventRecord: e}) != nil {
				return
			}
			last = e.Seq
		}
		if len(more) > 0 {
			continue
		}
		select {
		case <-wake:
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) boot(w http1.ResponseWriter, r *http1.Request) {
	rep := BootReply{Booted: s.Sup.Booted(), Uptime: s.Uptime.Seconds(), Services: []BootService{}}
	for _, snap := range s.Sup.Status() {
		rep.Services = append(rep.Services, BootService{Name: snap.Name, State: snap.State, Boot: snap.Boot, Requires: snap.Requires, After: snap.After})
	}
	slices.SortFunc(rep.Services, func(a, b BootService) int { return cmp.Compare(a.Name, b.Name) })
	writeJSON(w, http1.StatusOK, rep)
}

func (s *Server) action(w http1.ResponseWriter, r *http1.Request) {
	kinds := map[string]supervisor.EventKind{"start": supervisor.EvStart, "stop": supervisor.EvStop, "restart": supervisor.EvRestart, "reload": supervisor.EvReload}
	kind, ok := kinds[r.PathValue("action")]
	if !ok {
		writeErr(w, http1.StatusNotFound, fmt.Errorf("unknown action %q (start, stop, restart, reload)", r.PathValue("action")))
		return
	}
	err := s.Sup.Request(r.PathValue("name"), kind)
	var te *supervisor.TransitionError
	switch {
	case errors.Is(err, supervisor.ErrUnknownService):
		writeErr(w, http1.StatusNotFound, err)
	case errors.As(err, &te):
		writeErr(w, http1.StatusConflict, err)
	case err != nil:
		writeErr(w, http1.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http1.StatusAccepted, struct{}{})
	}
}

func (s *Server) reload(w http1.ResponseWriter, r *http1.Request) {
	if s.Reload == nil {
		writeErr(w, http1.StatusServiceUnavailable, errors.New("config reload is not available"))
		return
	}
	dry := r.URL.Query().Get("dry_run") == "1" || r.URL.Query().Get("dry_run") == "true"
	plan, err := s.Reload(r.Context(), dry)
	var re *supervisor.ReloadError
	switch {
	case errors.As(err, &re):
		writeJSON(w, http1.StatusUnprocessableEntity, ErrorReply{Error: supervisor.ErrInvalidConfig.Error(), Problems: re.Problems})
	case err != nil:
		writeErr(w, http1.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http1.StatusOK, ReloadReply{Plan: plan, DryRun: dry})
	}
}

// ParseSignal reads a signal as `corral kill` takes it: TERM, SIGTERM,
// term or 15.
func ParseSignal(name string) (unix.Signal, error) {
	if sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(name), "SIG")); sig != 0 {
		return sig, nil
	}
	if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

func (s *Server) kill(w http1.ResponseWriter, r *http1.Request) {
	name := r.URL.Query().Get("signal")
	if name == "" {
		name = "TERM"
	}
	sig, err := ParseSignal(name)
	if err != nil {
		writeErr(w, http1.StatusBadRequest, err)
		return
	}
	err = s.Sup.Kill(r.PathValue("name"), sig)
	switch {
	case errors.Is(err, supervisor.ErrUnknownService):
		writeErr(w, http1.StatusNotFound, err)
	case errors.Is(err, supervisor.ErrNotRunning):
		writeErr(w, http1.StatusConflict, err)
	case err != nil:
		writeErr(w, http1.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http1.StatusAccepted, struct{}{})
	}
}

func (s *Server) system(w http1.ResponseWriter, r *http1.Request) {
	a := r.PathValue("action")
	if a != "reboot" && a != "poweroff" && a != "halt" {
		writeErr(w, http1.StatusNotFound, fmt.Errorf("unknown action %q (reboot, poweroff, halt)", a))
		return
	}
	if s.System == nil {
		writeErr(w, http1.StatusServiceUnavailable, errors.New("not supported"))
		return
	}
	if err := s.System(a); err != nil {
		writeErr(w, http1.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http1.StatusAccepted, struct{}{})
}

func writeJSON(w http1.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http1.ResponseWriter, code int, err error) {
	writeJSON(w, code, ErrorReply{Error: err.Error()})
}
