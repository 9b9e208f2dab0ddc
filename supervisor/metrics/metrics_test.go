package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/config"
)

type rt struct{}
type inst struct{ h supervisor.Hooks }

func (rt) Start(def *config.Service, h supervisor.Hooks) (supervisor.Instance, error) {
	return &inst{h}, nil
}
func (*inst) Pid() int                    { return 42 }
func (*inst) Signal(unix.Signal) error    { return nil }
func (*inst) Kill() error                 { return nil }
func (*inst) Cleanup()                    {}
func (*inst) CgroupPath() string          { return "" }
func (*inst) Reload() error               { return nil }
func (*inst) Degraded() []string          { return nil }
func (*inst) Memory() (int64, error)      { return 4096, nil }
func (*inst) CPU() (time.Duration, error) { return 1500 * time.Millisecond, nil }

func TestScrapeParses(t *testing.T) {
	cfg := &config.Config{Services: []*config.Service{{Name: "web", StopTimeout: time.Second, StartTimeout: time.Second, RestartDelay: time.Second, RestartDelayMax: time.Second, StableAfter: time.Second}}}
	sup := supervisor.New(cfg, supervisor.Options{Runtime: rt{}, Log: zerolog.Nop()})
	sup.Run()
	defer sup.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sup.Wait(ctx, func(ss []supervisor.Snapshot) bool { return ss[0].State == supervisor.Running }); err != nil {
		t.Fatal(err)
	}
	sup.LogStreams().Stream("web").Line(time.Now(), "hello", false)

	srv, err := Listen("127.0.0.1:0", &Collector{Sup: sup, Version: "test", Uptime: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Scraped with net/http's client, as a Prometheus server would.
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range f.Metric {
			for k, v := range labels {
				found := false
				for _, lp := range m.Label {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			}
		}
		return 0, false
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"corral_service_up", map[string]string{"service": "web"}, 1},
		{"corral_service_state", map[string]string{"service": "web", "state": "running"}, 1},
		{"corral_service_state", map[string]string{"service": "web", "state": "failed"}, 0},
		{"corral_service_memory_bytes", map[string]string{"service": "web"}, 4096},
		{"corral_service_cpu_seconds_total", map[string]string{"service": "web"}, 1.5},
		{"corral_service_restarts_total", map[string]string{"service": "web"}, 0},
		{"corral_log_lines_total", map[string]string{"service": "web"}, 1},
		{"corral_boot_uptime_seconds", nil, 3},
		{"corral_build_info", map[string]string{"version": "test"}, 1},
	}
	for _, c := range checks {
		if got, ok := value(c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, name := range []string{"corral_service_boot_seconds", "corral_boot_complete_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}
