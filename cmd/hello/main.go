// Command hello is the example appliance's Go service: it announces
// readiness with go-systemd's daemon.SdNotify, keeps STATUS= current, and
// serves a small page on :8080. It is what a service written for systemd
// looks like, running unchanged under corral.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

func main() {
	interval := flag.Duration("interval", 2*time.Second, "how often to tick")
	warmup := flag.Duration("warmup", time.Second, "how long to take before READY=1")
	addr := flag.String("listen", ":8080", "HTTP address")
	flag.Parse()

	notify := func(state string) {
		if _, err := daemon.SdNotify(false, state); err != nil {
			fmt.Fprintln(os.Stderr, "hello: sd_notify:", err)
		}
	}
	fmt.Println("hello: warming up for", *warmup)
	notify("STATUS=warming up")
	time.Sleep(*warmup)

	var ticks atomic.Int64
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from a notify service: %d ticks\n", ticks.Load())
	})
	go func() {
		if err := http.ListenAndServe(*addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "hello:", err)
			os.Exit(1)
		}
	}()
	notify("READY=1\nSTATUS=ready, 0 ticks")
	fmt.Println("hello: ready, serving on", *addr)

	// PID 1 of its namespace ignores signals it has no handler for, so a
	// service that wants a clean stop handles SIGTERM itself.
	sigc := make(chan os.Signal, 1)
	// SIGHUP is `corral reload hello` (reload_signal's default): reload
	// the way systemd's notify-reload services do, RELOADING=1 with the
	// monotonic clock, then READY=1.
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			n := ticks.Add(1)
			notify(fmt.Sprintf("STATUS=serving, %d ticks", n))
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				var ts unix.Timespec
				_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
				notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading", ts.Nano()/1000))
				fmt.Println("hello: reloading")
				notify(fmt.Sprintf("READY=1\nSTATUS=serving, %d ticks", ticks.Load()))
				continue
			}
			notify("STOPPING=1")
			fmt.Println("hello: got", sig, "- bye")
			return
		}
	}
}
