package config

import "time"

// This file is the TOML schema. Every key is documented on its field; the
// field's default is set in defaultServiceFile or defaultGlobalFile, which
// pre-fill the struct before decoding, so a key left out keeps its default.
// Nothing outside this package sees these types.

// Defaults and limits that are not plain field defaults.
const (
	// MinMemory is the smallest limits.memory accepted. The child stage, a
	// Go program, runs inside the service's cgroup before it execs the
	// service, and needs a few MB of its own.
	MinMemory = 8 << 20
	// MinPids is the smallest limits.pids accepted: the child stage's Go
	// runtime starts a handful of threads before it execs the service.
	MinPids = 16
	// MaxCPU is the largest limits.cpu accepted, in cores.
	MaxCPU = 1024
	// MinCPU is the smallest: 1ms of CPU per 100ms period, the kernel's
	// smallest CFS quota.
	MinCPU = 0.01

	// DefaultPath is the PATH of a service whose env does not set one.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	globalFileName = "corral.toml"
	// reservedName is the name of corral's own log stream.
	reservedName = "corral"
	servicesDir  = "services"
)

// globalFile is corral.toml.
type globalFile struct {
	// Hostname of the machine, set at boot. Default "corral".
	Hostname string `toml:"hostname"`
	// Modules are kernel modules loaded at boot, in order, e.g.
	// ["veth", "bridge"]. Default none.
	Modules []string `toml:"modules"`
	// Network is the bridge network shared by every bridged service.
	Network bridgeTable `toml:"network"`
	// Log configures the supervisor's own log.
	Log logTable `toml:"log"`
	// Boot hands over to another root file system (initramfs stage).
	Boot bootTable `toml:"boot"`
	// Storage is the writable data partition of a read-only image.
	Storage storageTable `toml:"storage"`
	// Watchdog is the hardware watchdog.
	Watchdog watchdogTable `toml:"watchdog"`
	// Userns is the pool of host ids for user-namespaced services.
	Userns usernsTable `toml:"userns"`
	// API is the control socket.
	API apiTable `toml:"api"`
	// Metrics is the Prometheus endpoint.
	Metrics metricsTable `toml:"metrics"`
}

// apiTable is [api] in corral.toml: who may use the control socket
// (/run/corral/corral.sock). Root may always do everything.
type apiTable struct {
	// ReadGroup is a group (a name from /etc/group, or a numeric gid) whose
	// members may use the read-only calls: status, logs, events, analyze.
	// The socket is then mode 0660 and owned by that group. Starting,
	// stopping, reloading and shutting down stay root's. Default "": root
	// only, mode 0600.
	ReadGroup raw `toml:"read_group"`
}

// metricsTable is [metrics] in corral.toml.
type metricsTable struct {
	// Listen is the TCP address Prometheus metrics are served on, at
	// /metrics, e.g. "127.0.0.1:9100" or ":9100" (every interface). Default
	// "": no metrics endpoint.
	Listen string `toml:"listen"`
}

// usernsTable is [userns] in corral.toml: the host uids and gids given to
// services with container.user_namespace = true. Service NAME gets the
// block slot(NAME) of size ids starting at first_id + slot*size, where
// slot is a hash of the name (probing past a taken one): stable across
// restarts, reboots and other services coming or going.
type usernsTable struct {
	// FirstID is the first host id of the pool. Default 100000.
	FirstID int64 `toml:"first_id"`
	// Size is how many ids each service gets (its uids 0..size-1).
	// Default 65536.
	Size int64 `toml:"size"`
	// Slots is how many blocks the pool has. Default 1024.
	Slots int64 `toml:"slots"`
}

// watchdogTable is [watchdog] in corral.toml: the machine's hardware
// watchdog, petted by PID 1 only while PID 1 is healthy and every critical
// service is running and meeting its own watchdog.
type watchdogTable struct {
	// Device is the watchdog device. Default "": no hardware watchdog.
	Device string `toml:"device"`
	// Timeout is set on the device; the board resets this long after the
	// last pet. Default "15s" (about the bcm2835's maximum).
	Timeout duration `toml:"timeout"`
	// BootLimit: after this many boots in a row that did not keep every
	// critical service up (ready, then no restart for its stable_after),
	// only safe_mode services start. 0 = never.
	// Counted in /data/corral/failed-boots when /data is mounted, else in
	// /run (which does not survive a reboot). Default 3.
	BootLimit int `toml:"boot_limit"`
}

// bootTable is [boot] in corral.toml. It is for a corral running as PID 1
// of an initramfs: after early boot and module loading it mounts Root,
// moves /dev, /proc, /sys and /run into it, frees the initramfs and execs
// the new root's /sbin/init.
type bootTable struct {
	// Root is the device of the real root file system ("/dev/vda",
	// "LABEL=root", "UUID=..."). Default "": no switch, this is the root.
	Root string `toml:"root"`
	// RootFSType is the root's file system type. Default "ext4".
	RootFSType string `toml:"root_fstype"`
	// RootOptions are its mount options. Default "ro": an appliance's root
	// stays read-only; writable state lives on the data partition.
	RootOptions string `toml:"root_options"`
	// RootTimeout is how long to wait for the device to appear (a module
	// probing it, a slow SD card). Default "10s".
	RootTimeout duration `toml:"root_timeout"`
}

// storageTable is [storage] in corral.toml.
type storageTable struct {
	// Data is the device mounted read-write at /data at boot ("LABEL=data",
	// "UUID=...", or a /dev path). Default "": no data partition. If it
	// cannot be mounted, corral says so and boots without it.
	Data string `toml:"data"`
	// DataFSType is the data partition's file system. Default "ext4".
	DataFSType string `toml:"data_fstype"`
	// Var keeps /var on the data partition: /data/var is created if needed
	// and bound over /var. Default false.
	Var bool `toml:"var"`
}

// bridgeTable is [network] in corral.toml.
type bridgeTable struct {
	// Bridge is the bridge interface name, at most 15 characters.
	// Default "corral0".
	Bridge string `toml:"bridge"`
	// Subnet is the bridge's IPv4 network in CIDR form, prefix length 8 to
	// 30. Its first host address is the bridge's own (the services'
	// gateway). Default "10.88.0.0/24".
	Subnet string `toml:"subnet"`
	// DNS are the nameservers written into every container's
	// /etc/resolv.conf, IPv4 or IPv6 addresses, at most 3 (a resolver reads
	// no more). Default none: each container gets the supervisor's own
	// /etc/resolv.conf, read at every start, without the nameservers on
	// loopback (a bridged service's 127.0.0.1 is its own).
	DNS []string `toml:"dns"`
}

// logTable is [log] in corral.toml.
type logTable struct {
	// Level is "debug", "info", "warn" or "error". Default "info".
	Level string `toml:"level"`
	// Format is "auto" (console on a terminal, else json), "console" or
	// "json". Default "auto".
	Format string `toml:"format"`
	// Dir keeps every service's output, and corral's own log, in files
	// there (NAME.log, rotated to NAME.log.1 ...), an absolute path such as
	// "/data/log" on the data partition. Default "": RAM only (the last
	// 1000 lines of each service).
	Dir string `toml:"dir"`
	// FileSize is the size at which a log file is rotated; at least 4K.
	// Default "1M".
	FileSize size `toml:"file_size"`
	// Keep is how many rotated files each service keeps, 0 to 100.
	// Default 3.
	Keep int `toml:"keep"`
	// TotalSize caps all files in dir together: past it the oldest rotated
	// files go, whichever service they belong to. At least file_size.
	// Default "64M".
	TotalSize size `toml:"total_size"`
	// Rate is how many lines per second a service may log on average
	// (0 = no limit); lines over it are dropped, counted, and announced in
	// its log as "dropped N lines". Default 1000.
	Rate int `toml:"rate"`
	// Burst is how many lines a service may log at once above rate.
	// Default 5000.
	Burst int `toml:"burst"`
	// Syslog forwards every line to a remote collector, RFC 5424 over UDP
	// or TCP (octet-counted framing, RFC 6587): "udp://10.0.0.5:514" or
	// "tcp://logs.example:6514" (plain TCP, no TLS). Default "": none.
	Syslog string `toml:"syslog"`
}

func defaultGlobalFile() globalFile {
	return globalFile{
		Hostname: "corral",
		Network:  bridgeTable{Bridge: "corral0", Subnet: "10.88.0.0/24"},
		Log:      logTable{Level: "info", Format: "auto", FileSize: 1 << 20, Keep: 3, TotalSize: 64 << 20, Rate: 1000, Burst: 5000},
		Boot:     bootTable{RootFSType: "ext4", RootOptions: "ro", RootTimeout: duration(10 * time.Second)},
		Storage:  storageTable{DataFSType: "ext4"},
		Watchdog: watchdogTable{Timeout: duration(15 * time.Second), BootLimit: 3},
		Userns:   usernsTable{FirstID: 100000, Size: 65536, Slots: 1024},
	}
}

// serviceFile is services/NAME.toml.
type serviceFile struct {
	// Description is free text shown in status output. Default "".
	Description string `toml:"description"`
	// Exec is the program and its arguments, required. Either an array of
	// strings (the argv) or one string split into words like a shell would
	// (single quotes, double quotes and backslashes; no variables, globs,
	// pipes or redirections: no shell runs it). The program must be an
	// absolute path; PATH is not searched.
	Exec raw `toml:"exec"`
	// Env adds environment variables. The environment is PATH (DefaultPath
	// unless Env sets it) plus these, sorted by name. NOTIFY_SOCKET is set
	// by corral and cannot be given. Default none.
	Env map[string]string `toml:"env"`
	// Workdir is the working directory, an absolute path. Default "/".
	Workdir string `toml:"workdir"`
	// User and Group are names (looked up in the container's /etc/passwd
	// and /etc/group) or numeric ids, as strings or integers. Default root.
	User  raw `toml:"user"`
	Group raw `toml:"group"`
	// Requires lists services that must be running first; if one of them
	// is disabled, so is this service. Requires also orders. Default none.
	Requires []string `toml:"requires"`
	// After lists services to start before this one, without depending on
	// them. Default none.
	After []string `toml:"after"`
	// Restart is "on-failure" (non-zero exit or killed by a signal),
	// "always" or "never". Default "on-failure".
	Restart string `toml:"restart"`
	// RestartDelay is the first backoff delay, doubled after every
	// consecutive failure. Must be more than 0. Default "100ms".
	RestartDelay duration `toml:"restart_delay"`
	// RestartDelayMax caps the backoff delay; at least restart_delay.
	// Default "30s".
	RestartDelayMax duration `toml:"restart_delay_max"`
	// StableAfter: a run up (for notify: since READY=1) at least this
	// long resets the backoff, and the service restarts at once. Must be
	// more than 0. Default "10s".
	StableAfter duration `toml:"stable_after"`
	// StartLimitBurst is how many starts are allowed within
	// start_limit_interval before the service is Failed. 0 means no limit:
	// an unattended device should keep retrying slowly rather than give up
	// (s6's stance; systemd's StartLimitBurst is opt-in here). Default 0.
	StartLimitBurst int `toml:"start_limit_burst"`
	// StartLimitInterval is the window for start_limit_burst. Must be more
	// than 0. Default "60s".
	StartLimitInterval duration `toml:"start_limit_interval"`
	// PermanentExitCodes are exit codes (0 to 255) after which the service
	// is not restarted, whatever the policy: gokrazy's convention.
	// Default [125].
	PermanentExitCodes []int `toml:"permanent_exit_codes"`
	// StopSignal is sent first when the service is stopped, by name:
	// "SIGTERM" or "TERM" (any case). Default "SIGTERM".
	StopSignal string `toml:"stop_signal"`
	// StopTimeout is how long after the stop signal the cgroup is killed.
	// Default "10s".
	StopTimeout duration `toml:"stop_timeout"`
	// Notify makes the service Running only when it sends READY=1 to
	// $NOTIFY_SOCKET, instead of as soon as it is exec'd. Default false.
	Notify bool `toml:"notify"`
	// StartTimeout is how long a notify service has to send READY=1.
	// Must be more than 0. Default "30s".
	StartTimeout duration `toml:"start_timeout"`
	// NotifyAccess is who may send notify datagrams: "main" (the main
	// process only), "exec" (the main process and the reload command),
	// "all" (any process in the service's cgroup) or "none". Default
	// "main" when notify or watchdog is set, else "none" (as systemd).
	NotifyAccess string `toml:"notify_access"`
	// Watchdog makes the service send WATCHDOG=1 at least this often
	// (WATCHDOG_USEC is exported); a missed deadline sends
	// watchdog_signal, then kills and restarts it per policy. Default "0s":
	// off.
	Watchdog duration `toml:"watchdog"`
	// WatchdogSignal is sent on a missed watchdog deadline, like
	// systemd's WatchdogSignal=. Default "SIGABRT".
	WatchdogSignal string `toml:"watchdog_signal"`
	// ReloadSignal is sent by `corral reload SERVICE`. A notify service
	// then answers RELOADING=1 ... READY=1 (systemd's Type=notify-reload).
	// Default "SIGHUP".
	ReloadSignal string `toml:"reload_signal"`
	// Reload is a command run inside the service's container instead of
	// sending reload_signal (an absolute path and its arguments). Default
	// none.
	Reload raw `toml:"reload"`
	// Critical marks a service the hardware watchdog depends on: the board
	// is only kept alive while it runs and meets its own watchdog.
	// Default false.
	Critical bool `toml:"critical"`
	// SafeMode marks a service that still starts in safe mode (after
	// repeated failed boots). Default false.
	SafeMode bool `toml:"safe_mode"`
	// Capabilities are added to the default set a service keeps
	// (container.DefaultCaps: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
	// SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, AUDIT_WRITE,
	// SETFCAP), e.g. ["CAP_NET_RAW"]; ["ALL"] keeps every capability. A
	// service with a user gets exactly these as ambient capabilities.
	// Default none added.
	Capabilities []string `toml:"capabilities"`
	// NoNewPrivs: exec can never gain privileges (setuid binaries, file
	// capabilities). Default true.
	NoNewPrivs bool `toml:"no_new_privs"`
	// Seccomp installs the default syscall filter (no modules, kexec,
	// reboot, mounts, bpf, perf, keyring, ptrace, clock setting, namespace
	// changes). Default true.
	Seccomp bool `toml:"seccomp"`
	// AllowNamespaces lets the service create namespaces (unshare, setns,
	// clone with CLONE_NEW*), which the filter otherwise refuses. Default false.
	AllowNamespaces bool `toml:"allow_namespaces"`
	// AllowDegraded runs the service, marked degraded in corral status, when
	// part of its sandbox or limits did not take effect; otherwise that
	// fails its start. Default false.
	AllowDegraded bool `toml:"allow_degraded"`
	// OOMScoreAdj is the service's oom_score_adj, -1000 to 1000 (corral
	// itself runs at -1000, so the kernel kills a service first). Default 0.
	OOMScoreAdj int `toml:"oom_score_adj"`
	// Nice is the scheduling priority, -20 to 19. Default: unchanged (0).
	Nice *int `toml:"nice"`
	// CPUs pins the service to these CPUs, e.g. [2, 3]. Default: any.
	CPUs []int `toml:"cpus"`
	// Rlimits are resource limits, e.g. { nofile = 4096, core = 0 }: a
	// number (soft and hard), [soft, hard], or "unlimited". Names: as,
	// core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile,
	// nproc, rss, rtprio, rttime, sigpending, stack. Default: inherited.
	Rlimits map[string]raw `toml:"rlimits"`
	// Limits are the service's cgroup limits.
	Limits limitsTable `toml:"limits"`
	// Container shapes the service's container.
	Container containerTable `toml:"container"`
	// Network is the service's networking.
	Network networkTable `toml:"network"`
}

// limitsTable is [limits]. A key left out means "not limited".
type limitsTable struct {
	// Memory is the memory limit, a size such as "64M"; at least 8M
	// (MinMemory).
	Memory *size `toml:"memory"`
	// CPU is the CPU limit in cores, fractional allowed (0.5 = half a core),
	// from 0.01 to 1024.
	CPU *float64 `toml:"cpu"`
	// Pids caps processes plus threads; at least 16 (MinPids).
	Pids *int64 `toml:"pids"`
}

// containerTable is [container].
type containerTable struct {
	// Rootfs is the directory that becomes the service's "/", always
	// read-only. Default "": the supervisor's own root, read-only.
	Rootfs string `toml:"rootfs"`
	// Hostname inside the container. Default: the service name.
	Hostname string `toml:"hostname"`
	// Init keeps a tiny init in the container that forwards signals to the
	// service and reaps orphans, for programs not written to be PID 1.
	// Default false.
	Init bool `toml:"init"`
	// Mounts are extra mounts, [[container.mounts]] tables.
	Mounts []mountTable `toml:"mounts"`
	// UserNamespace runs the service in its own user namespace: root inside
	// is an unprivileged uid outside (a range from [userns] in corral.toml,
	// stable per service name). Files it must write (bind mounts) must
	// belong to that range. Default false.
	UserNamespace bool `toml:"user_namespace"`
	// Devices are host device nodes bound into the container's /dev, e.g.
	// ["/dev/ttyAMA0"]. The container's /dev otherwise has only null,
	// zero, full, random, urandom, tty and a private pts. Default none.
	Devices []string `toml:"devices"`
}

// mountTable is one [[container.mounts]].
type mountTable struct {
	// Type is "bind" or "tmpfs". Default "bind" when source is set.
	Type string `toml:"type"`
	// Source is the absolute path to bind (bind only).
	Source string `toml:"source"`
	// Target is the absolute path inside the container, not "/". Targets
	// must differ.
	Target string `toml:"target"`
	// ReadOnly mounts read-only. Default true for bind, false for tmpfs.
	ReadOnly *bool `toml:"read_only"`
	// Size caps a tmpfs, e.g. "16M" (tmpfs only). Default: the kernel's,
	// half of RAM.
	Size *size `toml:"size"`
}

// networkTable is [network] in a service file.
type networkTable struct {
	// Mode is "bridge" (own network namespace on the corral bridge),
	// "host" (share the supervisor's) or "none" (own namespace, only lo).
	// Default "bridge".
	Mode string `toml:"mode"`
	// Address is "auto" (an address of the bridge subnet derived from the
	// service's name, so it stays the same when other services come and
	// go; see assignAddresses) or a static IPv4 address in the subnet.
	// Bridge mode only. Default "auto".
	Address *string `toml:"address"`
	// Ports publishes service ports on the appliance, each
	// "HOST:CONTAINER" or "HOST:CONTAINER/PROTO" with PROTO "tcp" (the
	// default) or "udp", e.g. ["8080:80/tcp", "5353:53/udp"]. Connections
	// to any of the appliance's own addresses on HOST, from outside and
	// from the appliance itself, are forwarded to the service on
	// CONTAINER (127.0.0.1 is not forwarded: that would need route_localnet
	// on the bridge, which lets services reach loopback-only listeners).
	// Two services cannot publish the same HOST port and protocol. Bridge
	// mode only. Default none.
	Ports []string `toml:"ports"`
	// AllowFrom names services that may open connections to this one. By
	// default a service may connect to the services it requires or starts
	// after, and to the outside; every other connection between services
	// is dropped. Bridge mode only. Default none.
	AllowFrom []string `toml:"allow_from"`
	// Isolated cuts the service off everything beyond the bridge: no NAT
	// to the outside, no ports, no connections to the supervisor's own
	// addresses (except to a host-mode service it requires or starts
	// after). Other services stay reachable as the policy says. Bridge
	// mode only. Default false.
	Isolated bool `toml:"isolated"`
}

func defaultServiceFile(name string) serviceFile {
	return serviceFile{
		Workdir:            "/",
		Restart:            "on-failure",
		RestartDelay:       duration(100 * time.Millisecond),
		RestartDelayMax:    duration(30 * time.Second),
		StableAfter:        duration(10 * time.Second),
		StartLimitInterval: duration(60 * time.Second),
		PermanentExitCodes: []int{125},
		StopSignal:         "SIGTERM",
		WatchdogSignal:     "SIGABRT",
		ReloadSignal:       "SIGHUP",
		NoNewPrivs:         true,
		Seccomp:            true,
		StopTimeout:        duration(10 * time.Second),
		StartTimeout:       duration(30 * time.Second),
		Container:          containerTable{Hostname: name},
		Network:            networkTable{Mode: "bridge"},
	}
}
