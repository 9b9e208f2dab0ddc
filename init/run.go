package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/internal/reaper"
	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/config"
	"github.com/corral-init/corral/supervisor/notify"
)

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdRun is `corral run`: one command (or a service file) in a transient
// container with the options of a service, in the foreground, its exit
// code passed on, like systemd-run --wait --pipe.
//
// It needs no running corral: it is its own tiny supervisor, with its own
// reaper (it becomes a child subreaper), its own cgroup subtree
// (corral-run-PID under its own cgroup, removed at the end) and a private
// state directory for the notify socket. It reads no configuration
// directory and opens no control socket, so its start path is the
// service start path and nothing else: the entry point for start-latency
// benchmarks (--timing). The command's output goes straight to corral
// run's stdout (stdout and stderr both). Bridge networking belongs to the
// running corral: a transient container has network "none" (lo only,
// the default) or "host".
func cmdRun(args []string) int {
	fs := flag.NewFlagSet("corral run", flag.ContinueOnError)
	name := fs.String("name", "run", "the transient service's name (its cgroup, hostname)")
	file := fs.String("service", "", "a service file to run (its exec, unless a command is given)")
	memory := fs.String("memory", "", `memory limit, e.g. "64M"`)
	cpu := fs.Float64("cpu", 0, "CPU limit in cores, e.g. 0.5")
	pids := fs.Int64("pids", 0, "process limit")
	network := fs.String("network", "", `"none" (default: lo only) or "host"`)
	user := fs.String("user", "", "user (name or uid)")
	group := fs.String("group", "", "group (name or gid)")
	workdir := fs.String("workdir", "", "working directory")
	rootfs := fs.String("rootfs", "", "root file system directory (default: corral's root, read-only)")
	initMode := fs.Bool("init", false, "keep a tiny init in front of the command")
	notifyFlag := fs.Bool("notify", false, "the command sends READY=1 (with --timing: report when)")
	timing := fs.Bool("timing", false, "report the start latency on stderr")
	var envs, binds multiFlag
	fs.Var(&envs, "env", "KEY=VALUE (repeatable)")
	fs.Var(&binds, "bind", "SRC:DST[:rw] bind mount, read-only unless :rw (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: corral run [OPTIONS] [--service FILE] [--] CMD [ARGS...]")
		fs.PrintDefaults()
		fmt.Fprintln(os.Stderr, "exit code: the command's; 128+N if signal N killed it; 125 if it could not be started")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	argv := fs.Args()
	if len(argv) == 0 && *file == "" {
		fs.Usage()
		return exitUsage
	}

	doc := map[string]any{}
	origin := "corral run"
	if *file != "" {
		if _, err := toml.DecodeFile(*file, &doc); err != nil {
			fmt.Fprintf(os.Stderr, "corral run: %s: %v\n", *file, err)
			return exitRunSetup
		}
		origin = *file
		if *name == "run" {
			*name = strings.TrimSuffix(filepath.Base(*file), ".toml")
		}
	}
	table := func(k string) map[string]any {
		if t, ok := doc[k].(map[string]any); ok {
			return t
		}
		t := map[string]any{}
		doc[k] = t
		return t
	}
	if len(argv) > 0 {
		doc["exec"] = argv
	}
	if *memory != "" {
		table("limits")["memory"] = *memory
	}
	if *cpu > 0 {
		table("limits")["cpu"] = *cpu
	}
	if *pids > 0 {
		table("limits")["pids"] = *pids
	}
	net := table("network")
	switch {
	case *network != "":
		net["mode"] = *network
	case net["mode"] == nil || net["mode"] == "bridge":
		if net["mode"] == "bridge" {
			fmt.Fprintln(os.Stderr, "corral run: bridge networking belongs to the running corral; running with network \"none\" (lo only)")
		}
		net["mode"] = "none"
	}
	delete(net, "address")
	if *user != "" {
		doc["user"] = *user
	}
	if *group != "" {
		doc["group"] = *group
	}
	if *workdir != "" {
		doc["workdir"] = *workdir
	}
	if *rootfs != "" {
		table("container")["rootfs"] = *rootfs
	}
	if *initMode {
		table("container")["init"] = true
	}
	if *notifyFlag {
		doc["notify"] = true
	}
	for _, e := range envs {
		k, v, ok := strings.Cut(e, "=")
		if !ok {
			fmt.Fprintf(os.Stderr, "corral run: --env %q: want KEY=VALUE\n", e)
			return exitUsage
		}
		table("env")[k] = v
	}
	for _, b := range binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "rw" && parts[2] != "ro") {
			fmt.Fprintf(os.Stderr, "corral run: --bind %q: want SRC:DST[:rw]\n", b)
			return exitUsage
		}
		mounts, _ := table("container")["mounts"].([]map[string]any)
		if raw, ok := table("container")["mounts"].([]any); ok {
			for _, m := range raw {
				if mm, ok := m.(map[string]any); ok {
					mounts = append(mounts, mm)
				}
			}
		}
		mounts = append(mounts, map[string]any{"source": parts[0], "target": parts[1], "read_only": len(parts) < 3 || parts[2] == "ro"})
		table("container")["mounts"] = mounts
	}
	for _, k := range []string{"requires", "after"} {
		delete(doc, k) // nothing else runs here
	}
	var text bytes.Buffer
	if err := toml.NewEncoder(&text).Encode(doc); err != nil {
		fmt.Fprintf(os.Stderr, "corral run: %v\n", err)
		return exitRunSetup
	}
	def, problems := config.ParseService(*name, origin, text.String())
	if len(problems) > 0 {
		for _, p := range problems {
			msg := p.Error()
			if *file == "" {
				// Lines of a file we made up mean nothing: name the key.
				msg = fmt.Sprintf("corral run: %s: %s", p.Key, p.Msg)
			}
			fmt.Fprintln(os.Stderr, msg)
		}
		return exitRunSetup
	}
	return runTransient(def, *timing)
}

// exitRunSetup is corral run's code when the command could not be started
// (podman run and docker run use 125 the same way).
const exitRunSetup = 125

func runTransient(def *config.Service, timing bool) int {
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: !isTerminal(os.Stderr), TimeFormat: "15:04:05.000"}).
		Level(zerolog.WarnLevel).With().Timestamp().Logger()
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "corral run: %s: %v\n", what, err)
		if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) {
			fmt.Fprintln(os.Stderr, "  (corral run needs root: namespaces and cgroups)")
		}
		return exitRunSetup
	}
	// Orphans of the container come to us, not to the real PID 1.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	rp := reaper.New()
	defer rp.Close()
	prefix := fmt.Sprintf("corral-run-%d", os.Getpid())
	cg, err := container.OpenCgroups(container.CgroupOptions{Prefix: prefix})
	if err != nil {
		return fail("cgroups", err)
	}
	defer func() { _ = cg.RemoveRoot() }()
	state, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return fail("state directory", err)
	}
	defer os.RemoveAll(state)
	staging := filepath.Join(state, "staging")
	if err := os.Mkdir(staging, 0o700); err != nil {
		return fail("staging directory", err)
	}
	rt := &supervisor.ContainerRuntime{
		Containers: &container.Runtime{Cgroups: cg, Reaper: rp, Staging: staging},
		StateDir:   state,
		Log:        log,
		Output:     os.Stdout,
	}
	exited := make(chan container.Exit, 1)
	ready := make(chan time.Time, 1)
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigc)
	inst, err := rt.Start(def, supervisor.Hooks{
		OnExit: func(e container.Exit) { exited <- e },
		OnNotify: func(m notify.Message, release func()) {
			if release != nil {
				release()
			}
			if m.Ready {
				select {
				case ready <- time.Now():
				default:
				}
			}
		},
		OnOutput: func(time.Time, string, bool) {},
	})
	if err != nil {
		return fail("start "+def.Name, err)
	}
	if timing {
		fmt.Fprintf(os.Stderr, "corral run: %s exec'd %s after corral run started (pid %d)\n", def.Name, ms(time.Since(processStart)), inst.Pid())
	}
	var ex container.Exit
	interrupts := 0
	// A stop by signal ends as a service's does: SIGKILL after
	// stop_timeout, for a command that ignores it (as PID 1 of its pid
	// namespace it ignores every signal it has no handler for).
	var killAfter <-chan time.Time
wait:
	for {
		select {
		case e := <-exited:
			ex = e
			break wait
		case <-killAfter:
			fmt.Fprintf(os.Stderr, "corral run: %s still running %s after the signal: SIGKILL\n", def.Name, def.StopTimeout)
			_ = inst.Kill()
			killAfter = nil
		case t := <-ready:
			if timing {
				fmt.Fprintf(os.Stderr, "corral run: %s sent READY=1 %s after corral run started\n", def.Name, ms(t.Sub(processStart)))
			}
		case sig := <-sigc:
			interrupts++
			if interrupts > 2 {
				_ = inst.Kill()
				continue
			}
			_ = inst.Signal(sig.(unix.Signal))
			if killAfter == nil && sig != unix.SIGHUP {
				killAfter = time.After(def.StopTimeout)
				hint := ""
				if !def.Container.Init {
					hint = " (a command not written to be PID 1 may ignore it: --init forwards signals)"
				}
				fmt.Fprintf(os.Stderr, "corral run: sent %s to %s; SIGKILL in %s if it is still running%s\n", unix.SignalName(sig.(unix.Signal)), def.Name, def.StopTimeout, hint)
			}
		}
	}
	inst.Cleanup()
	if timing {
		fmt.Fprintf(os.Stderr, "corral run: %s %s after %s\n", def.Name, ex.Reason(), ms(time.Since(processStart)))
	}
	switch {
	case ex.Signal != 0:
		return 128 + int(ex.Signal)
	case ex.Code >= 0:
		return ex.Code
	}
	return exitFailed
}
