// Package metrics serves corral's state to Prometheus, in the text
// exposition format (internal/promtext) over internal/http1: client_golang
// and net/http would bring protobuf, TLS and HTTP/2 into PID 1 for a dozen
// lines of text. Every number is read from the supervisor's snapshots and
// the services' cgroups at scrape time, so an idle appliance does no work
// for its metrics between scrapes.
//
// # Metrics
//
//	corral_build_info{version}                       1
//	corral_start_time_seconds                        when corral started (unix time)
//	corral_boot_uptime_seconds                       the kernel's uptime when corral started
//	corral_boot_complete_seconds                     corral start to every service settled (absent until then)
//	corral_service_state{service,state}              1 for the current state, 0 for the others
//	corral_service_up{service}                       1 if running, reloading or done
//	corral_service_state_since_seconds{service}      when it entered that state (unix time)
//	corral_service_restarts_total{service}           restarts the policy made
//	corral_service_exits_total{service}              exits of its main process
//	corral_service_last_exit_code{service}           code of the last exit (-1: killed by a signal)
//	corral_service_last_exit_signal{service,signal}  1, with the signal that ended the last run
//	corral_service_oom_kills_total{service}          runs ended by the OOM killer
//	corral_service_watchdog_timeouts_total{service}  missed WATCHDOG=1 deadlines
//	corral_service_memory_bytes{service}             its cgroup's memory
//	corral_service_cpu_seconds_total{service}        its cgroup's CPU time
//	corral_service_boot_seconds{service,phase}       corral start to queued, started, ready
//	corral_log_lines_total{service}                  lines accepted
//	corral_log_lines_dropped_total{service,reason}   lines lost: "rate" (limit), "file" (slow disk)
//
// plus corral's own process, under client_golang's names: go_goroutines,
// go_memstats_heap_alloc_bytes, process_resident_memory_bytes,
// process_cpu_seconds_total, process_open_fds. Counters start at zero when
// corral starts, and again when a config reload replaces a service.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/corral-init/corral/internal/http1"
	"github.com/corral-init/corral/internal/promtext"
	"github.com/corral-init/corral/supervisor"
)

// Collector reads a supervisor.
type Collector struct {
	Sup     *supervisor.Supervisor
	Version string
	// Uptime is the kernel's uptime when corral started.
	Uptime time.Duration
	// Proc is /proc/self, for the process metrics ("" = /proc/self).
	Proc string
}

type families struct {
	list  []promtext.Family
	index map[string]int
}

func (f *families) add(name, help string, t promtext.Type, v float64, labels ...string) {
	if f.index == nil {
		f.index = map[string]int{}
	}
	i, ok := f.index[name]
	if !ok {
		i = len(f.list)
		f.index[name] = i
		f.list = append(f.list, promtext.Family{Name: name, Help: help, Type: t})
	}
	var ls []promtext.Label
	for j := 0; j+1 < len(labels); j += 2 {
		ls = append(ls, promtext.Label{Name: labels[j], Value: labels[j+1]})
	}
	f.list[i].Samples = append(f.list[i].Samples, promtext.Sample{Labels: ls, Value: v})
}

// Families reads everything once, for one scrape.
func (c *Collector) Families() []promtext.Family {
	var f families
	gauge := func(name, help string, v float64, labels ...string) { f.add(name, help, promtext.Gauge, v, labels...) }
	counter := func(name, help string, v float64, labels ...string) {
		f.add(name, help, promtext.Counter, v, labels...)
	}
	booted := c.Sup.Booted()
	gauge("corral_build_info", "corral's version.", 1, "version", c.Version)
	gauge("corral_start_time_seconds", "When corral started, unix time.", unixTime(booted))
	gauge("corral_boot_uptime_seconds", "The kernel's uptime when corral started (0 unless corral is the machine's init).", c.Uptime.Seconds())
	ss := c.Sup.Status()
	var settled time.Time
	allSettled := true
	for _, s := range ss {
		n := s.Name
		for _, st := range supervisor.States {
			v := 0.0
			if st == s.State {
				v = 1
			}
			gauge("corral_service_state", "1 for the service's current state, 0 for the others.", v, "service", n, "state", st.String())
		}
		up := 0.0
		if s.State.Up() {
			up = 1
		}
		gauge("corral_service_up", "1 if the service is up (running, reloading, or a finished one-shot).", up, "service", n)
		gauge("corral_service_state_since_seconds", "When the service entered its current state, unix time.", unixTime(s.Since), "service", n)
		counter("corral_service_restarts_total", "Restarts the restart policy made.", float64(s.Restarts), "service", n)
		counter("corral_service_exits_total", "Exits of the service's main process.", float64(s.Exits), "service", n)
		if s.Exits > 0 {
			gauge("corral_service_last_exit_code", "Exit code of the last exit; -1 if a signal ended it.", float64(s.ExitCode), "service", n)
			if s.ExitSignal != "" {
				gauge("corral_service_last_exit_signal", "1, labelled with the signal that ended the last run.", 1, "service", n, "signal", s.ExitSignal)
			}
		}
		counter("corral_service_oom_kills_total", "Runs ended by the kernel's OOM killer.", float64(s.OOMKills), "service", n)
		counter("corral_service_watchdog_timeouts_total", "Missed WATCHDOG=1 deadlines and WATCHDOG=trigger.", float64(s.WatchdogTimeouts), "service", n)
		if b, ok := s.MemoryBytes(); ok {
			gauge("corral_service_memory_bytes", "Memory charged to the service's cgroup.", float64(b), "service", n)
		}
		if d, ok := s.CPUTime(); ok {
			counter("corral_service_cpu_seconds_total", "CPU time used by the service's cgroup.", d.Seconds(), "service", n)
		}
		const bootHelp = "Seconds from corral's start until the service was queued, first started, first up."
		gauge("corral_service_boot_seconds", bootHelp, s.Boot.Queued.Sub(booted).Seconds(), "service", n, "phase", "queued")
		if !s.Boot.Started.IsZero() {
			gauge("corral_service_boot_seconds", bootHelp, s.Boot.Started.Sub(booted).Seconds(), "service", n, "phase", "started")
		}
		if !s.Boot.Ready.IsZero() {
			gauge("corral_service_boot_seconds", bootHelp, s.Boot.Ready.Sub(booted).Seconds(), "service", n, "phase", "ready")
		}
		// Settled: up once, failed, or held without ever starting (safe
		// mode, an operator's stop); anything else is still on its way.
		switch {
		case !s.Boot.Ready.IsZero():
			settled = later(settled, s.Boot.Ready)
		case s.State == supervisor.Failed:
			settled = later(settled, s.Since)
		case s.State == supervisor.Stopped && s.Boot.Started.IsZero() && s.Waiting != "" && !waitingForService(s.Waiting):
		default:
			allSettled = false
		}
	}
	if allSettled && len(ss) > 0 && !settled.IsZero() {
		gauge("corral_boot_complete_seconds", "From corral's start until every service had settled (up, failed or held) the first time.", settled.Sub(booted).Seconds())
	}
	logs := c.Sup.LogStreams()
	for _, name := range logs.Names() {
		st, ok := logs.Get(name)
		if !ok {
			continue
		}
		rate, file := st.Dropped()
		counter("corral_log_lines_total", "Lines of output accepted.", float64(st.Lines()), "service", name)
		const dropHelp = "Lines of output lost: over the rate limit, or a log file too slow."
		counter("corral_log_lines_dropped_total", dropHelp, float64(rate), "service", name, "reason", "rate")
		counter("corral_log_lines_dropped_total", dropHelp, float64(file), "service", name, "reason", "file")
	}
	c.process(gauge, counter)
	return f.list
}

// process adds corral's own process metrics, as client_golang names them.
func (c *Collector) process(gauge, counter func(string, string, float64, ...string)) {
	gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(sample[0].Value.Uint64()))
	}
	proc := c.Proc
	if proc == "" {
		proc = "/proc/self"
	}
	if b, err := os.ReadFile(proc + "/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseFloat(f[1], 64); err == nil {
				gauge("process_resident_memory_bytes", "Resident memory size in bytes.", pages*float64(os.Getpagesize()))
			}
		}
	}
	if b, err := os.ReadFile(proc + "/stat"); err == nil {
		// Fields after the command (which may hold spaces) in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 13 {
				ut, _ := strconv.ParseFloat(f[11], 64)
				st, _ := strconv.ParseFloat(f[12], 64)
				counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", (ut+st)/100) // USER_HZ
			}
		}
	}
	if es, err := os.ReadDir(proc + "/fd"); err == nil {
		gauge("process_open_fds", "Number of open file descriptors.", float64(len(es)))
	}
}

// waitingForService tells "waiting for db" (will start) from a hold
// (safe mode, an operator's stop), which counts as settled.
func waitingForService(why string) bool { return strings.HasPrefix(why, "waiting for ") }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func unixTime(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// Handler returns the /metrics handler.
func Handler(c *Collector) http1.Handler {
	return http1.HandlerFunc(func(w http1.ResponseWriter, r *http1.Request) {
		w.Header().Set("Content-Type", promtext.ContentType)
		w.WriteHeader(http1.StatusOK)
		_ = promtext.Write(w, c.Families())
	})
}

// Server is the metrics endpoint.
type Server struct {
	srv *http1.Server
	ln  net.Listener
}

// Listen serves /metrics on addr in the background.
func Listen(addr string, c *Collector) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http1.NewServeMux()
	mux.Handle("GET /metrics", Handler(c))
	s := &Server{ln: ln, srv: &http1.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is where it listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http1.ErrServerClosed) {
		return s.srv.Close()
	}
	return nil
}
