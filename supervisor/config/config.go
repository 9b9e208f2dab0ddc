package config

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
)

// Restart is a service's restart policy.
type Restart uint8

// The restart policies. The zero value is the default, RestartOnFailure.
const (
	// RestartOnFailure restarts after a non-zero exit or a death by signal.
	RestartOnFailure Restart = iota
	// RestartAlways restarts after every exit, successful or not.
	RestartAlways
	// RestartNever leaves the service Done (exit 0) or Failed.
	RestartNever
)

func (r Restart) String() string {
	switch r {
	case RestartOnFailure:
		return "on-failure"
	case RestartAlways:
		return "always"
	case RestartNever:
		return "never"
	}
	return "unknown"
}

// Service is one valid, enabled service, with every default applied. It is
// plain data: nothing in it refers back to the TOML it came from.
type Service struct {
	// Name is the file name without ".toml".
	Name string
	// File is the path the service was read from.
	File string
	// Description is free text for status output.
	Description string
	// Requires lists services that must be running before this one starts;
	// if one of them is disabled, so is this service. Requires also orders:
	// the supervisor starts a service after everything in Requires and After.
	Requires []string
	// After lists services this one starts after, without depending on them.
	// It may name disabled services (they are not in Config.Services); such
	// an entry orders nothing.
	After []string
	// Restart is the restart policy.
	Restart Restart
	// RestartDelay is the first backoff delay; it doubles after every
	// consecutive failure, up to RestartDelayMax.
	RestartDelay    time.Duration
	RestartDelayMax time.Duration
	// StableAfter: a run up (for notify: since READY=1) at least this
	// long resets the backoff, and the service restarts at once.
	StableAfter time.Duration
	// StartLimitBurst is how many starts are allowed in StartLimitInterval
	// before the service goes to Failed; 0 means no start limit.
	StartLimitBurst    int
	StartLimitInterval time.Duration
	// PermanentExitCodes are exit codes that mean "do not restart".
	PermanentExitCodes []int
	// StopSignal is sent first on stop; the cgroup is killed after
	// StopTimeout.
	StopSignal  unix.Signal
	StopTimeout time.Duration
	// Notify services are Running only after they send READY=1, which
	// they must do within StartTimeout.
	Notify       bool
	StartTimeout time.Duration
	// NotifyAccess is who may send notify datagrams.
	NotifyAccess NotifyAccess
	// Watchdog is the service watchdog interval (0 = off); a missed
	// deadline sends WatchdogSignal.
	Watchdog       time.Duration
	WatchdogSignal unix.Signal
	// ReloadSignal is sent on reload, unless Reload (a command run in the
	// container) is set.
	ReloadSignal unix.Signal
	Reload       []string
	// Critical services hold the hardware watchdog; SafeMode services
	// still start in safe mode.
	Critical, SafeMode bool
	// Container is the complete container spec: Name, Args, Env, Dir, User,
	// Group, Hostname, Rootfs, Mounts, Init, HostNetwork and Limits.
	Container container.Spec
	// Net is the network mode and, in bridge mode, the address (static or
	// allocated from the pool), the published ports and the policy keys;
	// all but the mode are zero for host and none.
	Net cnet.Spec
}

// LogConfig is the [log] table of corral.toml.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is auto, console or json.
	Format string
	// Dir holds the log files ("" = RAM only); FileSize, Keep and
	// TotalSize rotate and cap them.
	Dir       string
	FileSize  int64
	Keep      int
	TotalSize int64
	// Rate (lines/s, 0 = unlimited) and Burst limit each service's lines.
	Rate, Burst int
	// Syslog is the remote collector: Network "udp" or "tcp" and Addr
	// "host:port"; Network "" = none.
	Syslog Syslog
}

// Syslog is a remote syslog collector.
type Syslog struct {
	Network, Addr string
}

// API is the [api] table: who may use the control socket.
type API struct {
	// ReadGroup is the gid whose members may use read-only calls; -1 = none
	// (root only). ReadGroupName is how corral.toml named it.
	ReadGroup     int
	ReadGroupName string
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Listen is the metrics address ("" = off).
	Listen string
}

// Global is corral.toml, with defaults applied.
type Global struct {
	// File is the path corral.toml was (or would have been) read from.
	File string
	// Hostname of the machine.
	Hostname string
	// Network is the bridge every bridged service is attached to.
	Network cnet.BridgeConfig
	// DNS are the nameservers for every container's /etc/resolv.conf;
	// none means the supervisor's own resolv.conf.
	DNS []netip.Addr
	// Log configures the supervisor's own logging.
	Log LogConfig
	// Modules are kernel modules to load at boot, in order.
	Modules []string
	// Boot is the root file system to switch to (initramfs stage).
	Boot Boot
	// Storage is the writable data partition.
	Storage Storage
	// Watchdog is the hardware watchdog.
	Watchdog Watchdog
	// Userns is the host id pool of user-namespaced services.
	Userns Userns
	// API is the control socket's access.
	API API
	// Metrics is the Prometheus endpoint.
	Metrics Metrics
}

// Userns is [userns].
type Userns struct {
	FirstID, Size, Slots uint32
}

// Watchdog is [watchdog]. Device "" = none.
type Watchdog struct {
	Device    string
	Timeout   time.Duration
	BootLimit int
}

// NotifyAccess is who may send a service's notify datagrams.
type NotifyAccess uint8

// The notify_access values.
const (
	NotifyNone NotifyAccess = iota
	NotifyMain
	NotifyExec
	NotifyAll
)

func (n NotifyAccess) String() string {
	return [...]string{"none", "main", "exec", "all"}[n]
}

// ParseNotifyAccess reads a notify_access (or NOTIFYACCESS=) value.
func ParseNotifyAccess(s string) (NotifyAccess, bool) {
	for i, n := range []string{"none", "main", "exec", "all"} {
		if s == n {
			return NotifyAccess(i), true
		}
	}
	return 0, false
}

// Boot is [boot]: hand over to a real root file system. Root "" = none.
type Boot struct {
	Root, FSType, Options string
	Timeout               time.Duration
}

// Storage is [storage]: the data partition. Data "" = none.
type Storage struct {
	Data, FSType string
	Var          bool
}

// Disabled is a service file that did not become a Service.
type Disabled struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Reason is the first problem of the file, a dependency cycle, or
	// "requires X, which is disabled: <X's reason>".
	Reason string `json:"reason"`
}

// Config is everything Load found in a configuration directory.
type Config struct {
	// Dir is the directory passed to Load.
	Dir string
	// Global is corral.toml (all defaults when it is missing or broken).
	Global Global
	// Services are the valid, enabled services, sorted by name.
	Services []*Service
	// Disabled are the services that will not run, sorted by name.
	Disabled []Disabled
	// Problems is every problem found, in file order, then line order.
	Problems []*Error
}

// Service returns the enabled service called name, or nil.
func (c *Config) Service(name string) *Service {
	for _, s := range c.Services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Report prints what `corral check` shows: every problem, one per line, then
// each disabled service with its reason, then a summary line. It reports
// whether there were no problems. Write errors are ignored: w is a console.
func (c *Config) Report(w io.Writer) (ok bool) {
	for _, p := range c.Problems {
		fmt.Fprintln(w, p.Error())
	}
	for _, d := range c.Disabled {
		fmt.Fprintf(w, "disabled: %s: %s\n", d.Name, d.Reason)
	}
	fmt.Fprintf(w, "%s ok, %d disabled, %s\n",
		count(len(c.Services), "service"), len(c.Disabled), count(len(c.Problems), "problem"))
	return len(c.Problems) == 0
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
