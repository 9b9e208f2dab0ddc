// Package metrics serves corral's state to Prometheus
// (github.com/prometheus/client_golang): every number is read from the
// supervisor's snapshots and the services' cgroups at scrape time, so an
// idle appliance does no work for its metrics between scrapes.
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
// plus the Go runtime's and the process's standard metrics (go_*,
// process_*). Counters start at zero when corral starts, and again when a
// config reload replaces a service.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corral-init/corral/supervisor"
)

// Collector reads a supervisor.
type Collector struct {
	Sup     *supervisor.Supervisor
	Version string
	// Uptime is the kernel's uptime when corral started.
	Uptime time.Duration
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dBuild     = desc("corral_build_info", "corral's version.", "version")
	dStart     = desc("corral_start_time_seconds", "When corral started, unix time.")
	dUptime    = desc("corral_boot_uptime_seconds", "The kernel's uptime when corral started.")
	dComplete  = desc("corral_boot_complete_seconds", "From corral's start until every service had settled (up, failed or held) the first time.")
	dState     = desc("corral_service_state", "1 for the service's current state, 0 for the others.", "service", "state")
	dUp        = desc("corral_service_up", "1 if the service is up (running, reloading, or a finished one-shot).", "service")
	dSince     = desc("corral_service_state_since_seconds", "When the service entered its current state, unix time.", "service")
	dRestarts  = desc("corral_service_restarts_total", "Restarts the restart policy made.", "service")
	dExits     = desc("corral_service_exits_total", "Exits of the service's main process.", "service")
	dExitCode  = desc("corral_service_last_exit_code", "Exit code of the last exit; -1 if a signal ended it.", "service")
	dExitSig   = desc("corral_service_last_exit_signal", "1, labelled with the signal that ended the last run.", "service", "signal")
	dOOM       = desc("corral_service_oom_kills_total", "Runs ended by the kernel's OOM killer.", "service")
	dWatchdog  = desc("corral_service_watchdog_timeouts_total", "Missed WATCHDOG=1 deadlines and WATCHDOG=trigger.", "service")
	dMemory    = desc("corral_service_memory_bytes", "Memory charged to the service's cgroup.", "service")
	dCPU       = desc("corral_service_cpu_seconds_total", "CPU time used by the service's cgroup.", "service")
	dBoot      = desc("corral_service_boot_seconds", "Seconds from corral's start until the service was queued, first started, first up.", "service", "phase")
	dLines     = desc("corral_log_lines_total", "Lines of output accepted.", "service")
	dDropped   = desc("corral_log_lines_dropped_total", "Lines of output lost: over the rate limit, or a log file too slow.", "service", "reason")
	allMetrics = []*prometheus.Desc{dBuild, dStart, dUptime, dComplete, dState, dUp, dSince, dRestarts, dExits, dExitCode, dExitSig, dOOM, dWatchdog, dMemory, dCPU, dBoot, dLines, dDropped}
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allMetrics {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	booted := c.Sup.Booted()
	gauge(dBuild, 1, c.Version)
	gauge(dStart, unixTime(booted))
	gauge(dUptime, c.Uptime.Seconds())
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
			gauge(dState, v, n, st.String())
		}
		up := 0.0
		if s.State.Up() {
			up = 1
		}
		gauge(dUp, up, n)
		gauge(dSince, unixTime(s.Since), n)
		counter(dRestarts, float64(s.Restarts), n)
		counter(dExits, float64(s.Exits), n)
		if s.Exits > 0 {
			gauge(dExitCode, float64(s.ExitCode), n)
			if s.ExitSignal != "" {
				gauge(dExitSig, 1, n, s.ExitSignal)
			}
		}
		counter(dOOM, float64(s.OOMKills), n)
		counter(dWatchdog, float64(s.WatchdogTimeouts), n)
		if b, ok := s.MemoryBytes(); ok {
			gauge(dMemory, float64(b), n)
		}
		if d, ok := s.CPUTime(); ok {
			counter(dCPU, d.Seconds(), n)
		}
		gauge(dBoot, s.Boot.Queued.Sub(booted).Seconds(), n, "queued")
		if !s.Boot.Started.IsZero() {
			gauge(dBoot, s.Boot.Started.Sub(booted).Seconds(), n, "started")
		}
		if !s.Boot.Ready.IsZero() {
			gauge(dBoot, s.Boot.Ready.Sub(booted).Seconds(), n, "ready")
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
		gauge(dComplete, settled.Sub(booted).Seconds())
	}
	logs := c.Sup.LogStreams()
	for _, name := range logs.Names() {
		st, ok := logs.Get(name)
		if !ok {
			continue
		}
		rate, file := st.Dropped()
		counter(dLines, float64(st.Lines()), name)
		counter(dDropped, float64(rate), name, "rate")
		counter(dDropped, float64(file), name, "file")
	}
}

// waitingForService tells "waiting for db" (will start) from a hold
// (safe mode, an operator's stop), which counts as settled.
func waitingForService(why string) bool {
	return len(why) > 12 && why[:12] == "waiting for "
}

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

// Handler returns the /metrics handler: corral's metrics and the Go
// runtime's and process's.
func Handler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server is the metrics endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen serves /metrics on addr in the background.
func Listen(addr string, c *Collector) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(c))
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is where it listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return s.srv.Close()
	}
	return nil
}
