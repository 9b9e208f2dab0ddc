// Package api is corral's control API: HTTP and JSON over a unix socket
// (/run/corral/corral.sock), so `curl --unix-socket` works. The socket is
// mode 0600 and every connection's peer credentials are checked: only root
// may call it.
//
// # Endpoints
//
//	GET  /v1/services                    every service's status (+ disabled ones)
//	GET  /v1/services/{name}             one service, with its recent transitions
//	GET  /v1/services/{name}/logs?n=N    the newest N output lines
//	POST /v1/services/{name}/{action}    start, stop, restart, reload
//	POST /v1/services/{name}/kill?signal=SIG   signal the main process (default TERM)
//	POST /v1/system/{action}             reboot, poweroff, halt
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/config"
)

// Service is one service's status as the API returns it.
type Service struct {
	supervisor.Snapshot
	MemoryBytes *int64 `json:"memory_bytes,omitempty"`
}

// StatusReply is GET /v1/services.
type StatusReply struct {
	Services []Service         `json:"services"`
	Disabled []config.Disabled `json:"disabled,omitempty"`
}

// LogsReply is GET /v1/services/{name}/logs.
type LogsReply struct {
	Lines []supervisor.LogLine `json:"lines"`
}

// ErrorReply is the body of every non-2xx answer.
type ErrorReply struct {
	Error string `json:"error"`
}

// Server serves the API for one supervisor.
type Server struct {
	Sup *supervisor.Supervisor
	// System is called for POST /v1/system/{action}.
	System func(action string) error

	srv *http.Server
	ln  net.Listener
}

type ctxKey struct{}

// Listen binds the socket (replacing a stale one) and serves in the
// background.
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
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/services", s.list)
	mux.HandleFunc("GET /v1/services/{name}", s.one)
	mux.HandleFunc("GET /v1/services/{name}/logs", s.logs)
	mux.HandleFunc("POST /v1/services/{name}/kill", s.kill)
	mux.HandleFunc("POST /v1/services/{name}/{action}", s.action)
	mux.HandleFunc("POST /v1/system/{action}", s.system)
	s.srv = &http.Server{
		Handler:           authorize(mux),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, peerUID(c))
		},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func peerUID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	_ = rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

func authorize(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if uid, _ := r.Context().Value(ctxKey{}).(int); uid != 0 {
			writeErr(w, http.StatusForbidden, fmt.Errorf("permission denied: uid %d is not root", uid))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func withMemory(s supervisor.Snapshot) Service {
	out := Service{Snapshot: s}
	if n, ok := s.MemoryBytes(); ok {
		out.MemoryBytes = &n
	}
	return out
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	var rep StatusReply
	for _, snap := range s.Sup.Status() {
		snap.History = nil
		rep.Services = append(rep.Services, withMemory(snap))
	}
	rep.Disabled = s.Sup.Disabled()
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) one(w http.ResponseWriter, r *http.Request) {
	snap, err := s.Sup.Service(r.PathValue("name"))
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, withMemory(snap))
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	lines, err := s.Sup.Logs(r.PathValue("name"), n)
	if err != nil {
		writeErr(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, LogsReply{Lines: lines})
}

func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	kinds := map[string]supervisor.EventKind{"start": supervisor.EvStart, "stop": supervisor.EvStop, "restart": supervisor.EvRestart, "reload": supervisor.EvReload}
	kind, ok := kinds[r.PathValue("action")]
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Errorf("unknown action %q (start, stop, restart, reload)", r.PathValue("action")))
		return
	}
	err := s.Sup.Request(r.PathValue("name"), kind)
	var te *supervisor.TransitionError
	switch {
	case errors.Is(err, supervisor.ErrUnknownService):
		writeErr(w, http.StatusNotFound, err)
	case errors.As(err, &te):
		writeErr(w, http.StatusConflict, err)
	case err != nil:
		writeErr(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusAccepted, struct{}{})
	}
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("signal")
	if name == "" {
		name = "TERM"
	}
	sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(name), "SIG"))
	if sig == 0 {
		if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
			sig = unix.Signal(n)
		} else {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("unknown signal %q", name))
			return
		}
	}
	err := s.Sup.Kill(r.PathValue("name"), sig)
	switch {
	case errors.Is(err, supervisor.ErrUnknownService):
		writeErr(w, http.StatusNotFound, err)
	case errors.Is(err, supervisor.ErrNotRunning):
		writeErr(w, http.StatusConflict, err)
	case err != nil:
		writeErr(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusAccepted, struct{}{})
	}
}

func (s *Server) system(w http.ResponseWriter, r *http.Request) {
	a := r.PathValue("action")
	if a != "reboot" && a != "poweroff" && a != "halt" {
		writeErr(w, http.StatusNotFound, fmt.Errorf("unknown action %q (reboot, poweroff, halt)", a))
		return
	}
	if s.System == nil {
		writeErr(w, http.StatusServiceUnavailable, errors.New("not supported"))
		return
	}
	if err := s.System(a); err != nil {
		writeErr(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, ErrorReply{Error: err.Error()})
}
