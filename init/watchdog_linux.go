package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/config"
)

// hwWatchdog is the machine's watchdog device: opening it arms it, and the
// board resets unless PID 1 pets it in time.
type hwWatchdog struct {
	f        *os.File
	device   string
	sysfs    string // its /sys/class/watchdog directory, "" if unknown
	timeout  time.Duration
	log      zerolog.Logger
	stop     chan struct{}
	done     chan struct{}
	critical map[string]bool
	// shutdown: services are being stopped on purpose; keep petting while
	// PID 1 is alive, or a slow stop would reset the board.
	shutdown atomic.Bool
}

// sysClassWatchdog is where the kernel describes its watchdogs.
const sysClassWatchdog = "/sys/class/watchdog"

func openWatchdog(cfg config.Watchdog, log zerolog.Logger) (*hwWatchdog, error) {
	f, err := os.OpenFile(cfg.Device, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open watchdog %s: %w", cfg.Device, err)
	}
	w := &hwWatchdog{f: f, device: cfg.Device, timeout: cfg.Timeout, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	secs := int(cfg.Timeout / time.Second)
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil {
		log.Warn().Err(err).Int("seconds", secs).Msg("watchdog: set timeout; keeping the device's")
	}
	if got, err := unix.IoctlGetInt(int(f.Fd()), unix.WDIOC_GETTIMEOUT); err == nil && got > 0 {
		w.timeout = time.Duration(got) * time.Second
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) == nil {
		w.sysfs, _ = watchdogSysfs(sysClassWatchdog, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	}
	return w, nil
}

// run pets the watchdog every third of its timeout while the petter allows
// it, until stop. Each change between petting and not is logged.
func (w *hwWatchdog) run(sup *supervisor.Supervisor, grace time.Duration) {
	defer close(w.done)
	interval := max(w.timeout/3, 500*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	p := newPetter(w.critical, w.timeout, interval, grace, time.Now())
	lastWhy := ""
	w.log.Info().Str("device", w.device).Str("identity", sysfsAttr(w.sysfs, "identity")).
		Dur("timeout", w.timeout).Dur("interval", interval).Strs("critical", keys(w.critical)).Msg("watchdog: armed")
	for {
		// The time the services were seen, taken after reading them: a
		// service that came up is never newer than the pet it allowed,
		// and one that restarted while PID 1 answered the ping below is
		// caught at the next tick.
		snaps := sup.Status()
		seen := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), p.pingBudget(seen))
		alive := sup.Ping(ctx)
		cancel()
		ok, why := p.decide(seen, alive, snaps, w.shutdown.Load())
		if ok {
			if err := unix.IoctlWatchdogKeepalive(int(w.f.Fd())); err != nil {
				why = "keepalive: " + err.Error()
			} else {
				p.petted(seen, time.Now())
			}
		}
		if why != lastWhy {
			if why != "" {
				left := p.resetIn(time.Now()).Round(10 * time.Millisecond)
				w.log.Error().Dur("reset_in", left).Msg("watchdog: not petting, the board resets in " + left.String() + " unless this clears: " + why)
			} else {
				w.log.Info().Msg("watchdog: petting again")
			}
			lastWhy = why
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// disarm stops the watchdog for good (magic close): for halt and
// power-off, which must not be followed by a reset. The kernel says
// "watchdog did not stop!" if it refused (nowayout); sysfs tells the
// state.
func (w *hwWatchdog) disarm() {
	w.halt()
	if _, err := w.f.Write([]byte("V")); err != nil {
		w.log.Warn().Err(err).Msg("watchdog: magic close")
	}
	err := w.f.Close()
	state := sysfsAttr(w.sysfs, "state")
	switch {
	case err != nil:
		w.log.Warn().Err(err).Str("device", w.device).Str("state", state).Msg("watchdog: magic close")
	case state == "active":
		w.log.Error().Str("device", w.device).Str("state", state).Msg("watchdog: still active after the magic close (nowayout?): the board resets after the shutdown")
	default:
		w.log.Info().Str("device", w.device).Str("state", state).Msg("watchdog: disarmed (magic close)")
	}
}

// halt stops petting, after one last pet, but keeps the device open: what
// is left of the shutdown gets one full timeout, and if reboot(2) fails,
// the watchdog resets the board. It is called once the services are down,
// before the supervisor is closed: its actors can no longer answer after
// that, which would read as PID 1 hung.
func (w *hwWatchdog) halt() {
	select {
	case <-w.stop:
		return
	default:
		close(w.stop)
	}
	<-w.done
	if err := unix.IoctlWatchdogKeepalive(int(w.f.Fd())); err != nil {
		w.log.Warn().Err(err).Msg("watchdog: last pet")
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// bootCounter counts boots in a row that did not reach "every critical
// service up", in a file on the data partition when there is one.
type bootCounter struct{ file string }

func newBootCounter(dataMounted bool, stateDir string) bootCounter {
	if dataMounted {
		return bootCounter{file: "/data/corral/failed-boots"}
	}
	return bootCounter{file: filepath.Join(stateDir, "failed-boots")}
}

func (b bootCounter) read() int {
	data, err := os.ReadFile(b.file)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n
}

// write stores n durably: a power cut right after must not lose it.
func (b bootCounter) write(n int) error {
	if err := os.MkdirAll(filepath.Dir(b.file), 0o755); err != nil {
		return err
	}
	tmp := b.file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%d\n", n)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.file)
	}
	if d, derr := os.Open(filepath.Dir(b.file)); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return err
}

// isMountPoint reports whether dir is a mount point.
func isMountPoint(dir string) bool {
	m, err := mountPoints()
	return err == nil && m[dir]
}
