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
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/internal/reaper"
	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor"
	"github.com/corral-init/corral/supervisor/api"
	"github.com/corral-init/corral/supervisor/config"
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

// boot runs the supervisor. As PID 1 it never returns.
func boot(args []string) {
	m := detectMode()
	flags, badArgs := parseBootFlags(args)
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
	staging := filepath.Join(flags.stateDir, "staging")
	_ = os.Chmod(flags.stateDir, 0o711)
	if err := os.MkdirAll(staging, 0o711); err != nil {
		log.Error().Err(err).Msg("create staging directory")
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
		swept, err := cg.Sweep()
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
	sup := supervisor.New(cfg, supervisor.Options{Runtime: runtime, Log: log, Output: ls.serviceLine, Held: held})
	sup.Run()
	bootCtx, bootDone := context.WithCancel(context.Background())
	defer bootDone()
	go func() {
		// The boot counts as good once every critical service is up.
		if sup.Wait(bootCtx, func(ss []supervisor.Snapshot) bool { return allCriticalUp(ss, critical) }) == nil {
			if m == modeMachine {
				if err := bc.write(0); err != nil {
					log.Warn().Err(err).Msg("reset the failed-boot counter")
				}
			}
			log.Info().Int("critical", len(critical)).Msg("boot complete: every critical service is up")
		}
	}()
	wd := startWatchdog(m, cfg, sup, critical, log)

	shutdownReq := make(chan string, 1)
	srv := &api.Server{Sup: sup, System: func(action string) error {
		select {
		case shutdownReq <- action:
		default:
		}
		return nil
	}}
	sock := filepath.Join(flags.stateDir, "corral.sock")
	if err := srv.Listen(sock); err != nil {
		log.Error().Err(err).Msg("control socket")
	} else {
		log.Info().Str("socket", sock).Msg("control socket ready")
	}

	action := waitSignal(m, log, shutdownReq)
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
	sup.Close()
	_ = srv.Close()
	if cg != nil {
		if err := cg.RemoveRoot(); err != nil {
			log.Debug().Err(err).Msg("remove cgroup subtree")
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
	if wd != nil {
		if action == "reboot" {
			// Stop petting but keep it armed: if reboot(2) fails, the
			// watchdog resets the board.
			wd.halt()
		} else {
			wd.disarm() // halt and power-off must not end in a reset
		}
	}
	if m == modeMachine {
		finalShutdown(action, log, ls)
	}
	return 0
}

// safeMode reads and bumps the failed-boot counter (machine mode) and,
// past [watchdog] boot_limit, holds every service not marked safe_mode.
func safeMode(m mode, cfg *config.Config, stateDir string, log zerolog.Logger) (map[string]string, bootCounter, map[string]bool) {
	critical := map[string]bool{}
	for _, s := range cfg.Services {
		if s.Critical {
			critical[s.Name] = true
		}
	}
	bc := newBootCounter(isMountPoint("/data"), stateDir)
	if m != modeMachine {
		return nil, bc, critical
	}
	n := bc.read()
	if err := bc.write(n + 1); err != nil {
		log.Warn().Err(err).Str("file", bc.file).Msg("count this boot")
	}
	limit := cfg.Global.Watchdog.BootLimit
	if limit <= 0 || n < limit {
		return nil, bc, critical
	}
	why := fmt.Sprintf("safe mode: %d boots in a row did not bring every critical service up", n)
	held := map[string]string{}
	var kept []string
	for _, s := range cfg.Services {
		if s.SafeMode {
			kept = append(kept, s.Name)
		} else {
			held[s.Name] = why
		}
	}
	log.Error().Int("failed_boots", n).Strs("starting", kept).Str("counter", bc.file).
		Msg("SAFE MODE: " + why + "; starting only safe_mode services (fix the config, then reboot; a good boot resets the count)")
	return held, bc, critical
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
		if s.Critical {
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

func waitSignal(m mode, log zerolog.Logger, req <-chan string) string {
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, append(shutdownSignals, unix.SIGHUP)...)
	defer signal.Stop(sigc)
	for {
		select {
		case a := <-req:
			return a
		case sig := <-sigc:
			if sig == unix.SIGHUP {
				log.Warn().Msg("SIGHUP: configuration reload is not supported yet; ignored")
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
	action := waitSignal(m, log, req)
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
