package container

// The handshake between the parent (Start) and the child stage (ChildMain),
// over a SOCK_SEQPACKET socket pair: one JSON message per packet, so a
// message is never split or merged. The child's end is fd 3 and
// close-on-exec, so the parent sees end-of-file exactly when the service's
// exec succeeded (or the child died).
//
//	parent                                   child stage (fd 3)
//	------                                   -----------------
//	create cgroup, write limits
//	clone(NEWPID|NEWNS|NEWUTS|NEWIPC[|NEWNET],
//	      into the cgroup on v2) ──────────► Go runtime starts, reads fd 3
//	v1: write pid to every hierarchy
//	network: veth peer made in child's netns
//	send  config{spec, paths}  ────────────► unshare(NEWCGROUP): the group is
//	                                         now the namespace's root
//	                                         mount rootfs, /proc, /dev, /tmp,
//	                                         /run, /run/notify, extra mounts
//	                                         pivot_root, hostname, workdir,
//	                                         groups/gid/uid
//	                                 ◄────── send {exec}          (about to exec)
//	                                         execve(service)
//	read → EOF: the service runs              (fd 3 closed by exec)
//
//	any failure in the child:        ◄────── send {error: op, path, errno}
//	                                         exit(ChildFailedCode)
//
// With Spec.Init the child stage does not exec: it forks the service, sends
// {running, pid}, stays as the namespace's init (forwards signals, reaps),
// and before it exits sends {exit, status} with the service's real wait
// status, then the parent sees end-of-file. While it runs, the parent may
// send {reload, argv}: the init forks that command inside the container
// (MAINPID in its environment), says {reload-pid, pid}, and answers
// {reloaded, pid, status} when it has exited.

// ChildFailedCode is the exit code of a child stage that failed before the
// service ran. The reason travels over the socket, never only this code.
const ChildFailedCode = 122

// StageEnv marks a process as corral's child stage. init's main checks it
// before anything else.
const StageEnv = "_CORRAL_STAGE"

type msgType string

const (
	msgConfig  msgType = "config"
	msgExec    msgType = "exec"
	msgRunning msgType = "running"
	msgError   msgType = "error"
	msgExit    msgType = "exit"
	msgReload  msgType = "reload"
	msgForked  msgType = "reload-pid"
	msgDone    msgType = "reloaded"
)

// message is every packet on the handshake socket.
type message struct {
	Type   msgType      `json:"t"`
	Config *childConfig `json:"config,omitempty"`
	Err    *ChildError  `json:"err,omitempty"`
	Pid    int          `json:"pid,omitempty"`
	Status uint32       `json:"status,omitempty"` // raw wait status
	Argv   []string     `json:"argv,omitempty"`   // reload
	Notes  []string     `json:"notes,omitempty"`  // exec, running: what was skipped
}

// childConfig is what the child stage needs beyond the Spec.
type childConfig struct {
	Spec Spec `json:"spec"`
	// Staging is an empty directory in the supervisor's file system where
	// the child mounts its new root before pivot_root. Every child uses the
	// same one, each in its own private mount namespace.
	Staging string `json:"staging"`
	// NotifyDir is bound read-only at /run/notify ("" = none). The child
	// clones it from fd NotifyFD, opened by the parent: a user-namespaced
	// child could not walk corral's 0700 state directory to it.
	NotifyDir string `json:"notify_dir,omitempty"`
	NotifyFD  int    `json:"notify_fd,omitempty"`
	// Files are bound read-only over files of the new root, each from a
	// detached clone the parent made (FD), for the same reason.
	Files []fileBind `json:"files,omitempty"`
}

// fileBind is one FileMount as the child stage gets it.
type fileBind struct {
	Source   string `json:"source"` // for messages
	Target   string `json:"target"`
	FD       int    `json:"fd"`
	Optional bool   `json:"optional,omitempty"`
}

// maxMessage bounds one handshake packet.
const maxMessage = 64 << 10
