// Package config loads corral's configuration directory: it decodes the
// TOML files strictly, applies defaults, validates, and converts each
// service into a plain Service (a container.Spec, a net.Spec and the
// restart and notify policy). Nothing outside this package sees the TOML
// structs; schema.go documents every key on its field, and
// etc-examples/services/hello.toml shows them all, commented.
//
// # Files
//
// A configuration directory holds:
//
//	corral.toml          global settings (optional; missing = all defaults)
//	services/NAME.toml   one service per file; the service is called NAME
//
// NAME is 1 to 31 lowercase letters, digits, "_" or "-", starting with a
// letter or digit: it also names the service's cgroup and default hostname.
// "corral" is reserved: it names corral's own log stream.
// Files not ending in ".toml", and hidden files (editor swap files), are
// ignored.
//
// # Strictness
//
// A typo in a config file on an unattended device should fail loudly at
// `corral check`, not be silently ignored at boot. So every one of these is
// a problem, reported with file, line and key:
//
//   - syntax errors and duplicate keys
//   - unknown keys, with the closest known key when it is at most two edits
//     away ("unknown key (did you mean "memory"?)"); keys are case-sensitive
//   - values of the wrong TOML type
//   - bad values: durations, sizes, paths, names, addresses, ranges
//   - dependencies on missing services, on itself, or in a cycle
//
// Keys are named as in "limits.memory", "env.HOME", "requires[1]" and
// "container.mounts[0].target": dotted, with array elements counted from 0.
// A problem about one element of an array names the element. Problems for
// a key that is not in the file (a required key left out) are placed on its
// table's line, or on the whole file.
//
// A service with any problem is disabled; so is every service that
// requires it, transitively (an "after" on a disabled service only orders,
// so that service still runs). Every service on a dependency cycle is
// disabled, each with a problem naming the whole cycle. Problems in one
// file never stop others from loading. A problem in corral.toml (a bad
// value, an unknown key, a wrong type) makes only that setting keep its
// default; a corral.toml with a syntax error is not used at all.
//
// # Values
//
// Durations are strings for time.ParseDuration: "100ms", "10s", "2m",
// "1h30m"; never negative. Sizes are a TOML integer (bytes) or a string of
// digits with an optional unit K, M, G or T, all binary (1K = 1024), and an
// optional "B" or "iB": "64M", "64MB" and "64MiB" are the same. exec is an
// array of strings, or one string split into words like a shell would
// (quotes and backslashes, nothing else: no shell runs it).
//
// # Defaults
//
// corral.toml:
//
//	hostname = "corral"
//	modules  = []
//	[network] bridge = "corral0", subnet = "10.88.0.0/24", dns = [] (the
//	          supervisor's /etc/resolv.conf)
//	[log]     level = "info", format = "auto", dir = "" (RAM only),
//	          file_size = "1M", keep = 3, total_size = "64M",
//	          rate = 1000, burst = 5000, syslog = "" (none)
//	[api]     read_group = "" (root only)
//	[metrics] listen = "" (off)
//
// A service file:
//
//	workdir = "/", user and group root, restart = "on-failure",
//	restart_delay = "100ms", restart_delay_max = "30s", stable_after = "10s",
//	start_limit_burst = 0 (no limit), start_limit_interval = "60s",
//	permanent_exit_codes = [125], stop_signal = "SIGTERM",
//	stop_timeout = "10s", notify = false, start_timeout = "30s",
//	no limits, container.rootfs = "" (the supervisor's root, read-only),
//	container.hostname = NAME, container.init = false, no extra mounts,
//	network.mode = "bridge", network.address = "auto", network.ports = [],
//	network.allow_from = [], network.isolated = false
//
// The environment is PATH=DefaultPath (unless env sets PATH) followed by
// env, sorted by name. start_limit_burst is 0 because an unattended device
// should keep retrying slowly rather than give up (s6's stance); exit code
// 125 means "do not restart", gokrazy's convention.
//
// # Minimums
//
// limits.memory is at least 8M (MinMemory) and limits.pids at least 16
// (MinPids) because the child stage, a Go program, runs inside the
// service's cgroup before it execs the service: it needs a few MB and a
// handful of threads, and a lower limit would kill it with a confusing
// error instead of limiting the service. restart_delay and stable_after
// must be more than 0, or a crashing service would restart in a tight loop.
//
// # Addresses
//
// In bridge mode a service gets a static address (inside the subnet, and
// not its network address, the gateway, which is the first host address,
// or its broadcast address; two services cannot share one) or "auto".
// Allocation is deterministic and depends on as little as possible:
// static addresses are reserved first; each "auto" service has a home
// address derived from its name alone (SHA-256, modulo the pool) and takes
// it when it is free, the first by name when several share it; the rest,
// in name order, take the next free address after their home. Adding or
// removing a service therefore never moves a service that has its home,
// unless the newcomer has the same home (one chance in the pool size).
//
// # Network policy
//
// network.ports ("8080:80/tcp") publishes a service port on the
// appliance's own addresses; two enabled services cannot publish the same
// host port and protocol, and each of them gets a problem naming the
// other. A service may connect to the services it requires or starts
// after, to those that name it in network.allow_from, and to the outside
// unless it is network.isolated (which then cannot publish ports). These
// keys are for bridged services only. [network] dns in corral.toml lists
// at most 3 nameservers for the containers' /etc/resolv.conf.
package config
