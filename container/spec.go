package container

import "time"

// Spec is everything the runtime needs to start one service container. It is
// plain data: config builds it, the supervisor adds the per-start paths, and
// the parent sends it (as JSON) to the child stage.
type Spec struct {
	// Name of the service; also the default hostname and the cgroup leaf name.
	Name string `json:"name"`
	// Args is the argv of the service. Args[0] is an absolute path inside
	// the container's root.
	Args []string `json:"args"`
	// Env is the complete environment, KEY=VALUE.
	Env []string `json:"env"`
	// Dir is the working directory inside the container ("" = "/").
	Dir string `json:"dir,omitempty"`
	// User and Group are names (looked up in the container's /etc/passwd
	// and /etc/group) or numeric ids. Empty means root.
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// Hostname inside the container's UTS namespace ("" = Name).
	Hostname string `json:"hostname,omitempty"`
	// Rootfs is the directory that becomes "/" for the service, always
	// mounted read-only. "" means the supervisor's own root (recursively, so
	// its other mounts are visible too, read-only).
	Rootfs string `json:"rootfs,omitempty"`
	// Mounts are applied after the standard ones (/proc, /dev, /tmp, /run).
	Mounts []Mount `json:"mounts,omitempty"`
	// Init keeps the child stage alive as a tiny init inside the container:
	// it forks the service, forwards signals to it and reaps orphans. Use it
	// for programs that do not expect to be PID 1 of a namespace.
	Init bool `json:"init,omitempty"`
	// HostNetwork shares the supervisor's network namespace instead of
	// creating a new one.
	HostNetwork bool `json:"host_network,omitempty"`
	// Limits are applied to the service's cgroup before the process exists.
	Limits Limits `json:"limits"`
	// Security is the sandbox applied just before exec and checked after.
	Security Security `json:"security"`
	// UserNS, when set, runs the service in its own user namespace: its
	// root is HostID on the host, its ids 0..Size-1 are HostID..HostID+Size-1.
	UserNS *IDMap `json:"userns,omitempty"`
}

// IDMap maps a container's uids and gids 0..Size-1 to HostID onwards.
type IDMap struct {
	HostID uint32 `json:"host_id"`
	Size   uint32 `json:"size"`
}

// MountType is the kind of an extra mount.
type MountType string

// The mount types a service file can ask for.
const (
	MountBind  MountType = "bind"
	MountTmpfs MountType = "tmpfs"
)

// Mount is one extra mount inside the container.
type Mount struct {
	Type MountType `json:"type"`
	// Source is a path in the supervisor's mount namespace (bind only).
	Source string `json:"source,omitempty"`
	// Target is an absolute path inside the container. It must already
	// exist in the (read-only) root, or lie inside a tmpfs made earlier.
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Size caps a tmpfs, in bytes (0 = the kernel default, half of RAM).
	Size int64 `json:"size,omitempty"`
}

// Limits are the cgroup limits of one service. Zero means "not limited".
type Limits struct {
	// MemoryMax in bytes (memory.max on v2, memory.limit_in_bytes on v1).
	MemoryMax int64 `json:"memory_max,omitempty"`
	// CPU in cores, may be fractional (cpu.max on v2, CFS quota on v1).
	CPU float64 `json:"cpu,omitempty"`
	// PidsMax caps tasks (processes and threads) in the cgroup.
	PidsMax int64 `json:"pids_max,omitempty"`
}

// CPUPeriod is the CFS period corral uses when it writes a CPU limit.
const CPUPeriod = 100 * time.Millisecond

// CPUQuota returns the CFS quota (per CPUPeriod) for a limit in cores.
func (l Limits) CPUQuota() time.Duration {
	return time.Duration(l.CPU * float64(CPUPeriod))
}

// FileMount binds one file of the supervisor's (Source) read-only over a
// file of the container's root (Target, e.g. /etc/hosts). Target is
// resolved inside the new root, symlinks included (Buildroot's
// /etc/resolv.conf points into /tmp); a target that does not exist is
// created where that is possible (in /tmp or /run), and a read-only root
// without it fails the start.
type FileMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// Optional: when the target is missing from a read-only root, skip
	// the bind and report it in Process.Notes instead of failing.
	Optional bool `json:"optional,omitempty"`
}
