// Package container starts one service as a container: a re-exec of the
// corral binary (the "child stage") cloned into new pid, mount, uts, ipc,
// cgroup and (usually) network namespaces, born inside its own cgroup.
//
// # Parent and child
//
// The parent side (Start) creates the process and talks to the child stage
// over a socket pair; the handshake is drawn in handshake.go. The child
// stage (ChildMain) is the only code that runs between clone and exec. It
// builds the root filesystem, sets hostname, credentials and environment,
// reports "about to exec" and execs the service. Any failure before exec is
// sent back as a typed message, so the supervisor never has to guess from
// "exit status 1".
//
// # Cgroups
//
// Cgroups (cgroup.go) detects v2 or v1 at start. On v2 the child is cloned
// straight into its cgroup (CLONE_INTO_CGROUP); on v1 the parent writes the
// pid into each hierarchy before it lets the child go on, so the service's
// first instruction already runs limited. A limit that was asked for and
// cannot be applied fails the start: nothing runs silently unlimited.
package container
