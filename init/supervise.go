package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/internal/logfile"
	"github.com/corral-init/corral/internal/reaper"
	"github.com/corral-init/corral/internal/remotelog"
	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/api"
	"github.com/corral-init/corral/supervisor/config"
	"github.com/corral-init/corral/supervisor/metrics"
)

// bootFlags are the supervisor's command line.
type bootFlags struct {
	configDir string
	stateDir  string
	logFormat string
	logLevel  string
	cgPrefix  string
}

func parseBootFlags(args []string) (bootFlags, []string) {
	var f bootFlags
	fs := flag.NewFlagSet("corral", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.configDir, "config", "/etc/corral", "configuration directory")
	fs.StringVar(&f.stateDir, "state-dir", "/run/corral", "runtime state directory (API socket, notify sockets)")
	fs.StringVar(&f.logFormat, "log-format", "", "auto, console or json (default: corral.toml's, else auto)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn, error (default: corral.toml's, else info)")
	fs.StringVar(&f.cgPrefix, "cgroup-prefix", "corral", "name of corral's cgroup subtree")
	// PID 1 never refuses to boot over a bad argument: an unknown flag or a
	// stray word is noted and skipped, alone, and the rest still counts.
	var keep, bad []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case a == "boot":
		case !strings.HasPrefix(a, "-") || a == "-" || a == "--":
			bad = append(bad, "ignored argument "+strconv.Quote(a))
		case fs.Lookup(name) == nil:
			bad = append(bad, "ignored unknown flag "+strconv.Quote(a))
		case hasValue:
			keep = append(keep, a)
		case i+1 < len(args):
			keep = append(keep, a, args[i+1])
			i++
		default:
			bad = append(bad, "ignored flag without a value "+strconv.Quote(a))
		}
	}
	if err := fs.Parse(keep); err != nil {
		bad = append(bad, err.Error())
	}
	return f, bad
}

// startUptime is the kernel's uptime when corral started: how long the
// kernel and everything before corral took (in machine mode).
var startUptime time.Duration

// processStart is when this process started running Go code.
var processStart = time.Now()

// boot runs the supervisor. As PID 1 it never returns.
func boot(args []string) {
	m := detectMode()
	flags, badArgs := parseBootFlags(args)
	if m == modeSupervisor && len(badArgs) > 0 {
		// Only PID 1 boots over a bad command line (the kernel's stray
		// words); a supervisor started by hand says no, before touching
		// anything, so a mistyped command cannot start a second corral.
		for _, b := range badArgs {
			fmt.Fprintln(os.Stderr, "corral: "+strings.TrimPrefix(b, "ignored "))
		}
		fmt.Fprintln(os.Stderr, "corral: not starting the supervisor with a bad command line; corral help lists the commands")
		os.Exit(2)
	}
	// A first logger for early boot; the config may change its level.
	ls := newLogger(os.Stderr, flags.logFormat, flags.logLevel)
	log := ls.log
	defer func() {
		// Last line of defence: PID 1 must not return or panic.
		if r := recover(); r != nil {
			log.Error().Str("panic", fmt.Sprint(r)).Bytes("stack", debug.Stack()).Msg("corral crashed")
			if m != modeSupervisor {
				haltForever(log, ls)
			}
			ls.con.Close()
			os.Exit(1)
		}
	}()
	code := run(m, flags, badArgs, ls)
	if m == modeMachine {
		haltForever(log, ls) // only reached if reboot(2) failed
	}
	ls.con.Close()
	os.Exit(code)
}

// run is everything between early boot and shutdown. It returns the exit
// code for container and supervisor mode.
func run(m mode, flags bootFlags, badArgs []string, ls *logSetup) int {
	log := ls.log
	log.Info().Str("version", version).Str("mode", m.String()).Int("pid", os.Getpid()).
		Str("config", flags.configDir).Msgf("corral %s starting (%s mode)", version, m)
	for _, b := range badArgs {
		log.Warn().Msg(b)
	}

	// PID 1's heap is small and steady: collect sooner rather than let it
	// grow to twice its live size (the default), memory is the appliance's
	// scarcest resource, and the CPU cost at idle is nil.
	debug.SetGCPercent(50)
	// The kernel's OOM killer must pick a service, never PID 1 (services
	// set their own oom_score_adj; they would inherit this).
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Warn().Err(err).Msg("cannot shield corral from the OOM killer (oom_score_adj -1000): a memory-starved machine might kill PID 1 before a service")
	}
	priv := privacy{true, true, true}
	switch m {
	case modeMachine:
		if err := prepareMachine(log); err != nil {
			log.Error().Err(err).Msg("early boot")
		}
	case modeContainer:
		p, err := prepareContainer(log)
		priv = p
		if err != nil {
			log.Error().Err(err).Msg("early boot")
			return waitForShutdown(m, log, nil)
		}
	case modeSupervisor:
		// Orphans of our services come to us, not to the real PID 1.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn().Err(err).Msg("become child subreaper")
		}
	}

	// How long the kernel and early boot took: only meaningful when
	// corral is the machine's init (/proc is mounted by now).
	if m == modeMachine {
		startUptime = readUptime() - time.Since(processStart)
	}

	cfg, err := config.Load(flags.configDir)
	if err != nil {
		log.Error().Err(err).Msg("cannot read the configuration; no services will run")
		if m == modeMachine {
			sigc := make(chan os.Signal, 1)
			signal.Notify(sigc, shutdownSignals...)
			finalShutdown(signalAction(emergencyShell(log, sigc)), log, nil)
			return 1
		}
		return waitForShutdown(m, log, nil)
	}
	if flags.logLevel == "" && cfg.Global.Log.Level != "" {
		if lvl, err := zerolog.ParseLevel(cfg.Global.Log.Level); err == nil {
			log = log.Level(lvl)
		}
	}
	for _, p := range cfg.Problems {
		log.Error().Str("file", p.File).Int("line", p.Line).Str("key", p.Key).Msg(p.Error())
	}
	for _, d := range cfg.Disabled {
		log.Error().Str("svc", d.Name).Msg("disabled: " + d.Reason)
	}

	if m == modeMachine {
		if loaded, err := loadModules(cfg.Global.Modules); len(loaded) > 0 || err != nil {
			ev := log.Info()
			if err != nil {
				ev = log.Error().Err(err)
			}
			ev.Strs("modules", loaded).Msg("loaded kernel modules")
		}
		if cfg.Global.Boot.Root != "" {
			// Returns only if the switch failed: then boot from here.
			err := switchRoot(cfg.Global.Boot, ls)
			log.Error().Err(err).Str("root", cfg.Global.Boot.Root).Msg("switch root failed: booting the services of the initramfs")
		} else if onRootfs() {
			// Returns only on failure: then containers will not start.
			err := leaveRootfs(ls)
			log.Error().Err(err).Msg("cannot leave the initramfs: containers will fail to pivot_root")
		}
		mountData(cfg.Global.Storage, log)
	}
	// After the data partition: [log] dir is usually on it.
	remote := configureLogs(cfg, ls, log)
	if m != modeSupervisor && priv.uts {
		if h := hostnameFor(cfg.Global.Hostname); h != "" {
			if err := unix.Sethostname([]byte(h)); err != nil {
				log.Warn().Err(err).Str("hostname", h).Msg("set hostname")
			}
		}
	}
	if m != modeSupervisor && priv.net {
		if err := cnet.LoopbackUp(-1); err != nil {
			log.Warn().Err(err).Msg("bring up lo")
		}
	}

	// 0711: a user-namespaced service's child stage walks to the staging
	// directory as an unprivileged host uid; it may not list anything, and
	// what is in here is protected on its own (svc/ 0700, the socket 0600).
	if err := os.MkdirAll(flags.stateDir, 0o711); err != nil {
		log.Error().Err(err).Msg("create state directory")
	}
	// A second supervisor on the same state directory would take over the
	// control socket of a live one; on the same cgroup subtree it would
	// kill that one's services as "left over", in the same network
	// namespace delete its veths. Each has a lock, and a lock that a live
	// corral holds stops a supervisor; the machine's init boots on.
	// heldByAnother logs such a lock (true), or one that could not be
	// taken at all (false: go on, unguarded).
	heldByAnother := func(err, locked error, what string, fields map[string]any, busy string) bool {
		switch {
		case errors.Is(err, locked):
			log.Error().Fields(fields).Msg(busy)
			return true
		case err != nil:
			log.Warn().Err(err).Fields(fields).Msgf("cannot lock %s; a second corral would not be noticed", what)
		}
		return false
	}
	if heldByAnother(container.LockDir(flags.stateDir), container.ErrLocked, "the state directory", map[string]any{"state_dir": flags.stateDir},
		"another corral is running with this state directory; not starting a second one over it (use --state-dir, or stop the other)") && m != modeMachine {
		return 1
	}
	staging := filepath.Join(flags.stateDir, "staging")
	_ = os.Chmod(flags.stateDir, 0o711)
	if err := os.MkdirAll(staging, 0o711); err != nil {
		log.Error().Err(err).Msg("create staging directory")
	}

	// refuse ends a supervisor that will not start over a live corral,
	// leaving nothing of its own behind (a cgroup subtree only if it holds
	// the subtree's lock: otherwise the subtree is the other corral's).
	var ownSubtree *container.Cgroups
	refuse := func() int {
		if ownSubtree != nil {
			_ = ownSubtree.RemoveRoot()
		}
		_ = os.Remove(staging)
		_ = os.Remove(flags.stateDir) // only if empty: not the other's
		return 1
	}

	rp := reaper.New()
	defer rp.Close()

	cg, err := container.OpenCgroups(container.CgroupOptions{Prefix: flags.cgPrefix})
	if err != nil {
		log.Error().Err(err).Msg("cgroups unavailable: no service can start")
	} else {
		ev := log.Info().Str("cgroup", cg.Root()).Str("version", cg.Version.String()).Strs("controllers", cg.Controllers())
		if miss := cg.Missing(); len(miss) > 0 {
			log.Warn().Strs("missing", miss).Msg("cgroup controllers missing: services asking for these limits will not start")
		}
		ev.Msg("cgroups " + cg.Version.String())
		// Before the network: a killed corral's services must be gone
		// (and their namespaces with their veths) before anything starts.
		// But only a dead corral's: a live one holds the subtree's lock.
		var swept []string
		if heldByAnother(cg.Lock(), container.ErrLocked, "the cgroup subtree", map[string]any{"cgroup": cg.Root(), "cgroup_prefix": flags.cgPrefix},
			"another corral is running in this cgroup subtree; not starting a second one, which would kill its services (use --cgroup-prefix, or stop the other)") {
			if m != modeMachine {
				return refuse()
			}
			// The machine's init boots anyway, and sweeps nothing.
		} else {
			ownSubtree = cg
			swept, err = cg.Sweep()
		}
		if len(swept) > 0 || err != nil {
			ev := log.Warn()
			if err != nil {
				ev = log.Error().Err(err)
			}
			ev.Strs("groups", swept).Msg("killed what an earlier corral left in its cgroup subtree")
		}
	}

	fw, hosts := supervisor.NetworkPlan(cfg)
	var network *cnet.Network
	if needsBridge(cfg) {
		switch {
		case !priv.net:
			log.Error().Msg("bridge network refused: corral shares the host's network namespace; bridged services will not start")
		default:
			// Before Setup, which deletes "stale" veths and replaces the
			// tables: a live corral in this namespace owns them.
			if heldByAnother(cnet.LockNamespace(), cnet.ErrNetworkBusy, "the network namespace", nil,
				"another corral runs the bridge network in this network namespace; not starting a second one over it (stop the other, or run this one in its own network namespace)") {
				if m != modeMachine {
					return refuse()
				}
				break // the machine's init boots on, without a bridge
			}
			var rep cnet.SetupReport
			network, rep, err = cnet.Setup(cfg.Global.Network, cnet.Options{Firewall: &fw, StateFile: filepath.Join(flags.stateDir, "net-sysctl")})
			if len(rep.Restored) > 0 {
				log.Warn().Strs("sysctls", rep.Restored).Msg("restored the sysctls an earlier corral left changed")
			}
			if len(rep.Stale) > 0 {
				log.Warn().Strs("links", rep.Stale).Msg("deleted the veths an earlier corral left")
			}
			if err != nil {
				log.Error().Err(err).Msg("bridge network: bridged services will not start")
			} else {
				ev := log.Info().Str("bridge", cfg.Global.Network.Name).Str("subnet", cfg.Global.Network.Subnet.String()).
					Uint32("mtu", rep.MTU).Str("table", cnet.TableName)
				if rep.Uplink == "" {
					ev.Msg("bridge up; no default route yet: services reach the outside once there is one (checked at each start)")
				} else {
					ev.Str("uplink", rep.Uplink).Msg("bridge up, NAT through " + rep.Uplink)
				}
				log.Debug().Str("ruleset", fw.String()).Msg("nftables tables installed")
			}
		}
	}

	rt := &supervisor.ContainerRuntime{
		Containers: &container.Runtime{Cgroups: cg, Reaper: rp, Staging: staging},
		Network:    network,
		StateDir:   flags.stateDir,
		Hide:       hiddenDirs(cfg),
		Hosts:      hosts,
		DNS:        cfg.Global.DNS,
		Log:        log,
	}
	var runtime supervisor.Runtime = rt
	if cg == nil {
		runtime = failingRuntime{errors.New("cgroups unavailable")}
	}
	held, bc, critical := safeMode(m, cfg, flags.stateDir, log)
	sup := supervisor.New(cfg, supervisor.Options{Runtime: runtime, Log: log, Output: ls.serviceLine, Held: held, Logs: ls.logs})
	sup.Run()
	bootCtx, bootDone := context.WithCancel(context.Background())
	defer bootDone()
	go waitGoodBoot(bootCtx, m, cfg, sup, critical, held != nil, bc, log)
	go settleBoot(bootCtx, sup, log)
	wd := startWatchdog(m, cfg, sup, critical, log)

	reload := func(ctx context.Context, dry bool) (supervisor.Plan, error) {
		return reloadConfig(flags.configDir, sup, network != nil, netPlan{fw, hosts}, dry, log)
	}
	shutdownReq := make(chan string, 1)
	srv := &api.Server{Sup: sup, Reload: reload, Uptime: startUptime, System: func(action string) error {
		select {
		case shutdownReq <- action:
		default:
		}
		return nil
	}}
	srv.ReadGroup, srv.ReadGroupName = readGroup(cfg.Global.API, log)
	if srv.ReadGroup >= 0 {
		// The group must reach the socket: traverse, not list.
		if err := os.Chmod(flags.stateDir, 0o711); err != nil {
			log.Warn().Err(err).Msg("let the read group reach the control socket")
		}
	}
	sock := filepath.Join(flags.stateDir, "corral.sock")
	if err := srv.Listen(sock); err != nil {
		log.Error().Err(err).Msg("control socket")
	} else {
		log.Info().Str("socket", sock).Int("read_group", srv.ReadGroup).Msg("control socket ready")
	}
	var ms *metrics.Server
	if addr := cfg.Global.Metrics.Listen; addr != "" {
		ms, err = metrics.Listen(addr, &metrics.Collector{Sup: sup, Version: version, Uptime: startUptime})
		if err != nil {
			log.Error().Err(err).Msg("metrics: no metrics endpoint")
		} else {
			log.Info().Str("listen", ms.Addr().String()).Msg("metrics endpoint ready (/metrics)")
		}
	}

	action := waitSignal(m, log, shutdownReq, func() {
		plan, err := reload(context.Background(), false)
		if err != nil {
			log.Error().Err(err).Msg("SIGHUP: config reload rejected; the running services are untouched")
			return
		}
		log.Info().Strs("notes", plan.Notes).Msg("SIGHUP: config reloaded: " + plan.Summary())
	})
	log.Info().Str("action", action).Msg("shutting down: stopping services in reverse dependency order")
	if wd != nil {
		wd.shutdown.Store(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sup.StopBudget())
	if err := sup.Shutdown(ctx); err != nil {
		log.Error().Err(err).Msg("shutdown")
	} else {
		log.Info().Msg("all services stopped")
	}
	cancel()
	if wd != nil {
		// The last pet: a closed supervisor cannot answer the watchdog's
		// pings. The rest of the shutdown has one full timeout.
		wd.halt()
	}
	sup.Close()
	_ = srv.Close()
	if ms != nil {
		_ = ms.Close()
	}
	// Last lines to the files and the collector, before /data goes.
	ls.logs.Close()
	if remote != nil {
		remote.Close()
	}
	if cg != nil {
		if err := cg.RemoveRoot(); err != nil {
			log.Debug().Err(err).Msg("remove cgroup subtree")
		}
	}
	if m == modeSupervisor {
		// A supervisor's state directory outlives it (PID 1's is a tmpfs
		// that goes with the machine): leave no empty directories behind.
		// Remove, not RemoveAll: what is not empty is not ours to judge.
		for _, d := range []string{filepath.Join(flags.stateDir, "svc"), staging} {
			_ = os.Remove(d)
		}
	}
	if network != nil {
		if m == modeSupervisor {
			// PID 1's namespace goes with the machine; a supervisor's
			// stays, so it undoes what it did there.
			if err := network.Remove(); err != nil {
				log.Warn().Err(err).Msg("remove bridge, nftables tables and sysctls")
			}
		}
		_ = network.Close()
	}
	if wd != nil && action != "reboot" {
		// Halt and power-off must not end in a reset. A reboot leaves it
		// armed (halted above): if reboot(2) fails, the watchdog resets
		// the board.
		wd.disarm()
	}
	if m == modeMachine {
		finalShutdown(action, log, ls)
	}
	return 0
}

// settleBoot waits for the start wave to be over (every service launched
// at least once and none still starting; at most a minute) and then hands
// the wave's garbage back to the kernel: decoding the config, building
// namespaces and the first log lines leave a heap about twice what corral
// keeps, and on a small board that memory belongs to the services, not to
// a heap that would only be collected at the next forced GC.
func settleBoot(ctx context.Context, sup *supervisor.Supervisor, log zerolog.Logger) {
	t0 := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	settled := sup.Wait(wctx, func(ss []supervisor.Snapshot) bool {
		for _, s := range ss {
			if s.State == supervisor.Starting || s.Boot.Started.IsZero() && s.State != supervisor.Failed {
				return false
			}
		}
		return true
	}) == nil
	if ctx.Err() != nil {
		return
	}
	debug.FreeOSMemory()
	log.Debug().Bool("settled", settled).Dur("after", time.Since(t0)).Msg("start wave over: returned its memory to the kernel")
}

// waitGoodBoot resets the failed-boot counter once the boot is good: every
// critical service has stayed up for its stable_after (bootGood). It
// looks again at each change of a critical service, and when the
// services are all up, at the time they will have been up long enough.
func waitGoodBoot(ctx context.Context, m mode, cfg *config.Config, sup *supervisor.Supervisor, critical map[string]bool, safe bool, bc bootCounter, log zerolog.Logger) {
	stable := map[string]time.Duration{}
	for _, s := range cfg.Services {
		if critical[s.Name] {
			stable[s.Name] = s.StableAfter
		}
	}
	for {
		snaps := sup.Status()
		ok, wait := bootGood(snaps, stable, time.Now())
		if ok {
			break
		}
		seen := criticalState(snaps, stable)
		var wctx context.Context
		var cancel context.CancelFunc
		if wait > 0 {
			wctx, cancel = context.WithTimeout(ctx, wait)
		} else {
			wctx, cancel = context.WithCancel(ctx)
		}
		_ = sup.Wait(wctx, func(ss []supervisor.Snapshot) bool { return criticalState(ss, stable) != seen })
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
	if m == modeMachine {
		if err := bc.write(0); err != nil {
			log.Warn().Err(err).Msg("reset the failed-boot counter")
		}
	}
	if safe {
		log.Info().Int("critical", len(critical)).Bool("safe_mode", true).
			Msg("boot complete (safe mode): the critical services it starts stayed up; the failed-boot count is reset, so the next boot starts every service")
		return
	}
	log.Info().Int("critical", len(critical)).Msg("boot complete: every critical service is up and stayed up for its stable_after")
}

// safeMode reads and bumps the failed-boot counter (machine mode) and,
// past [watchdog] boot_limit, holds every service not marked safe_mode.
// It returns the services to hold and the critical services to wait for:
// the hardware watchdog and the good boot only wait for the ones that
// start.
func safeMode(m mode, cfg *config.Config, stateDir string, log zerolog.Logger) (map[string]string, bootCounter, map[string]bool) {
	bc := newBootCounter(isMountPoint("/data"), stateDir)
	if m != modeMachine {
		p := planBoot(cfg.Services, 0, 0)
		return nil, bc, p.critical
	}
	n := bc.read()
	if err := bc.write(n + 1); err != nil {
		log.Warn().Err(err).Str("file", bc.file).Msg("count this boot")
	}
	limit := cfg.Global.Watchdog.BootLimit
	p := planBoot(cfg.Services, n, limit)
	switch {
	case p.safe:
		log.Error().Int("failed_boots", n).Strs("starting", p.kept).Str("counter", bc.file).
			Msg("SAFE MODE: " + p.why + "; starting only safe_mode services (fix the config, then reboot; a good boot resets the count)")
	case n > 0:
		ev := log.Warn().Int("failed_boots", n).Str("counter", bc.file)
		if limit > 0 {
			ev = ev.Int("boot_limit", limit)
		}
		ev.Msgf("failed-boot counter: the last %d boot(s) did not keep every critical service up", n)
	}
	return p.held, bc, p.critical
}

// bootPlan is what a boot starts, given the failed-boot count.
type bootPlan struct {
	safe     bool
	why      string
	held     map[string]string // service -> why it is not started
	kept     []string          // the services that start in safe mode
	critical map[string]bool   // the critical services that start
}

// planBoot decides which services a boot starts: every one while fewer
// than limit boots in a row failed (limit 0: always), else only the
// safe_mode ones. A critical service that safe mode holds is not waited
// for: the board must stay up in safe mode, and the safe boot is good
// once the critical services it does start are, so the next boot tries
// every service again.
func planBoot(services []*config.Service, failed, limit int) bootPlan {
	p := bootPlan{critical: map[string]bool{}}
	p.safe = limit > 0 && failed >= limit
	if p.safe {
		p.why = fmt.Sprintf("safe mode: %d boots in a row did not bring every critical service up", failed)
		p.held = map[string]string{}
	}
	for _, s := range services {
		if p.safe && !s.SafeMode {
			p.held[s.Name] = p.why
			continue
		}
		if p.safe {
			p.kept = append(p.kept, s.Name)
		}
		if s.Critical {
			p.critical[s.Name] = true
		}
	}
	return p
}

// startWatchdog opens the hardware watchdog (machine mode only) and pets it
// from a goroutine while PID 1 and the critical services are healthy.
func startWatchdog(m mode, cfg *config.Config, sup *supervisor.Supervisor, critical map[string]bool, log zerolog.Logger) *hwWatchdog {
	dev := cfg.Global.Watchdog.Device
	if dev == "" {
		return nil
	}
	if m != modeMachine {
		log.Warn().Str("device", dev).Msg("watchdog: a hardware watchdog is for PID 1 of a machine; ignored")
		return nil
	}
	w, err := openWatchdog(cfg.Global.Watchdog, log)
	if err != nil {
		log.Error().Err(err).Msg("watchdog: the board will not be reset if corral hangs")
		return nil
	}
	w.critical = critical
	grace := 60 * time.Second
	for _, s := range cfg.Services {
		if critical[s.Name] {
			grace = max(grace, s.StartTimeout+10*time.Second)
		}
	}
	go w.run(sup, grace)
	return w
}

// hiddenDirs are the directories of the data partition: every service's
// state is there, so no service sees it, except what it binds itself.
func hiddenDirs(cfg *config.Config) []string {
	var out []string
	if cfg.Global.Storage.Data != "" {
		out = append(out, "/data")
		if cfg.Global.Storage.Var {
			out = append(out, "/var")
		}
	}
	return out
}

func needsBridge(cfg *config.Config) bool {
	for _, s := range cfg.Services {
		if s.Net.Mode == cnet.ModeBridge {
			return true
		}
	}
	return false
}

// failingRuntime fails every start with one reason.
type failingRuntime struct{ err error }

func (f failingRuntime) Start(*config.Service, supervisor.Hooks) (supervisor.Instance, error) {
	return nil, f.err
}

// signalAction maps PID-1 signals to shutdown actions, as busybox init and
// procd do: SIGTERM and SIGINT (ctrl-alt-del) reboot, SIGUSR1 halts,
// SIGUSR2 and SIGPWR power off.
func signalAction(sig os.Signal) string {
	switch sig {
	case unix.SIGUSR1:
		return "halt"
	case unix.SIGUSR2, unix.SIGPWR:
		return "poweroff"
	}
	return "reboot"
}

var shutdownSignals = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPWR}

// waitSignal waits for a shutdown request or signal; SIGHUP calls reload
// (nil: ignored).
func waitSignal(m mode, log zerolog.Logger, req <-chan string, reload func()) string {
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, append(shutdownSignals, unix.SIGHUP)...)
	defer signal.Stop(sigc)
	for {
		select {
		case a := <-req:
			return a
		case sig := <-sigc:
			if sig == unix.SIGHUP {
				if reload == nil {
					log.Warn().Msg("SIGHUP: no configuration to reload; ignored")
				} else {
					reload()
				}
				continue
			}
			return signalAction(sig)
		}
	}
}

// waitForShutdown is where corral waits when it cannot run services: as
// PID 1 it must stay up until asked to shut down, without spinning.
func waitForShutdown(m mode, log zerolog.Logger, req <-chan string) int {
	if m == modeSupervisor {
		return 1
	}
	log.Warn().Msg("waiting for a shutdown signal (SIGTERM reboot, SIGUSR1 halt, SIGUSR2/SIGPWR poweroff)")
	action := waitSignal(m, log, req, nil)
	if m == modeMachine {
		finalShutdown(action, log, nil)
	}
	return 1
}

// finalShutdown ends a machine: every process gets SIGTERM, then SIGKILL,
// file systems are synced and unmounted (or made read-only), and reboot(2)
// does the rest.
func finalShutdown(action string, log zerolog.Logger, ls *logSetup) {
	_ = unix.Kill(-1, unix.SIGTERM)
	// As PID 1 every process left is a child of ours: ECHILD means none
	// is. (kill(-1, 0) cannot tell: it succeeds while kernel threads exist.)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); errors.Is(err, unix.ECHILD) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	mounts := mountList()
	unmounted, readOnly := 0, 0
	for i := len(mounts) - 1; i >= 0; i-- {
		t := mounts[i]
		if t == "/" || t == "/proc" || t == "/sys" || t == "/dev" {
			continue
		}
		if err := unix.Unmount(t, 0); err == nil {
			unmounted++
		} else if unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, "") == nil {
			readOnly++
		}
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		log.Warn().Err(err).Msg("remount / read-only")
	}
	log.Info().Int("count", unmounted).Int("read_only", readOnly).Msg("unmounted filesystems")
	unix.Sync()
	cmd := map[string]int{"reboot": unix.LINUX_REBOOT_CMD_RESTART, "poweroff": unix.LINUX_REBOOT_CMD_POWER_OFF, "halt": unix.LINUX_REBOOT_CMD_HALT}[action]
	log.Info().Str("action", action).Msg("bye")
	if ls != nil {
		ls.con.Close()
	}
	if err := unix.Reboot(cmd); err != nil {
		fmt.Fprintf(os.Stderr, "corral: reboot(%s): %v\n", action, err)
	}
}

// haltForever keeps PID 1 alive after a failed reboot, without spinning.
func haltForever(log zerolog.Logger, ls *logSetup) {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, shutdownSignals...)
	for sig := range sigc {
		finalShutdown(signalAction(sig), log, nil)
	}
}

// reloadConfig re-reads the configuration directory and applies it (or,
// dry, only plans it). Any problem rejects the whole configuration.
// netPlan is what the bridge network was set up with at boot.
type netPlan struct {
	fw    cnet.Firewall
	hosts []cnet.Host
}

func reloadConfig(dir string, sup *supervisor.Supervisor, haveBridge bool, boot netPlan, dry bool, log zerolog.Logger) (supervisor.Plan, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return supervisor.Plan{}, fmt.Errorf("reload: %w", err)
	}
	// The files' own problems first: a broken bridged service also
	// changes the network plan, and that must not hide why.
	plan, err := sup.PlanReload(cfg)
	if err != nil {
		return plan, err
	}
	if needsBridge(cfg) && !haveBridge {
		return supervisor.Plan{}, &supervisor.ReloadError{Problems: []string{
			"a service uses the bridge network, which was not set up at boot (no service needed it then): restart corral to add it",
		}}
	}
	// The firewall (ports, allow_from, isolation, peers) and every
	// container's /etc/hosts are made at boot from the whole
	// configuration, and cannot be changed live yet: a reload that changes
	// them would run services under a policy that is not theirs.
	if fw, hosts := supervisor.NetworkPlan(cfg); haveBridge && (!reflect.DeepEqual(fw, boot.fw) || !reflect.DeepEqual(hosts, boot.hosts)) {
		return supervisor.Plan{}, &supervisor.ReloadError{Problems: []string{
			"the bridge network's plan changes (a bridged service added or removed, or its address, ports, allow_from, isolated or dependencies): " +
				"the firewall and /etc/hosts are only made at boot; restart corral (reboot) to apply it",
		}}
	}
	if dry {
		return plan, nil
	}
	// Not the request's context: a client that goes away must not leave
	// a reload half done. The stops are bounded by the stop budget.
	ctx, cancel := context.WithTimeout(context.Background(), sup.StopBudget())
	defer cancel()
	plan, err = sup.Reload(ctx, cfg)
	if err == nil {
		for _, n := range plan.Notes {
			log.Warn().Msg("reload: " + n)
		}
	}
	return plan, err
}

// configureLogs applies [log]: files in dir, the rate limit, the remote
// collector. It returns the collector to close at shutdown.
func configureLogs(cfg *config.Config, ls *logSetup, log zerolog.Logger) *remotelog.Sender {
	lc := cfg.Global.Log
	o := supervisor.LogOptions{Rate: float64(lc.Rate), Burst: lc.Burst, Log: log}
	if lc.Dir != "" {
		d, err := logfile.Open(logfile.Options{Dir: lc.Dir, FileSize: lc.FileSize, Keep: lc.Keep, TotalSize: lc.TotalSize})
		if err != nil {
			log.Error().Err(err).Msg("log files: logs are kept in RAM only")
		} else {
			o.Files = d
			log.Info().Str("dir", lc.Dir).Int64("file_size", lc.FileSize).Int("keep", lc.Keep).Int64("total_size", lc.TotalSize).Msg("log files")
		}
	}
	var remote *remotelog.Sender
	if lc.Syslog.Network != "" {
		host := hostnameFor(cfg.Global.Hostname)
		if h, err := os.Hostname(); err == nil && host == "" {
			host = h
		}
		remote = remotelog.New(lc.Syslog.Network, lc.Syslog.Addr, host)
		o.Remote = remote
		log.Info().Str("syslog", lc.Syslog.Network+"://"+lc.Syslog.Addr).Msg("forwarding logs to a remote collector")
	}
	ls.logs.Configure(o)
	return remote
}

// readGroup resolves [api] read_group to a gid (-1: none).
func readGroup(a config.API, log zerolog.Logger) (int, string) {
	if a.ReadGroupName == "" {
		return a.ReadGroup, ""
	}
	gid, err := lookupGroup("/etc/group", a.ReadGroupName)
	if err != nil {
		log.Error().Err(err).Msg("api.read_group: the control socket stays root's")
		return -1, ""
	}
	return gid, a.ReadGroupName
}

// lookupGroup finds a group's gid in an /etc/group file.
func lookupGroup(file, name string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return -1, fmt.Errorf("look up group %s: %w", name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			gid, err := strconv.Atoi(f[2])
			if err != nil {
				return -1, fmt.Errorf("look up group %s in %s: bad gid %q", name, file, f[2])
			}
			return gid, nil
		}
	}
	return -1, fmt.Errorf("look up group %s: not in %s", name, file)
}

// readUptime is the kernel's uptime (0 if /proc is not mounted yet).
func readUptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	sec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return time.Duration(sec * float64(time.Second))
}
