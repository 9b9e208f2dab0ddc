package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/reaper"
)

// Runtime starts service containers.
type Runtime struct {
	Cgroups *Cgroups
	Reaper  *reaper.Reaper
	// Self is the corral binary re-executed as the child stage
	// ("" = /proc/self/exe).
	Self string
	// Staging is an empty directory the child stages mount their new root
	// on, each in its own mount namespace.
	Staging string
}

// StartOptions are the per-start inputs besides the Spec.
type StartOptions struct {
	Spec Spec
	// Output receives the service's stdout and stderr (nil = /dev/null).
	// Start hands it to the child; the caller closes its own copy.
	Output *os.File
	// NotifyDir is bound read-only at /run/notify inside the container.
	NotifyDir string
	// Files are bound read-only over files of the container's root
	// (/etc/hosts, /etc/resolv.conf), before the Spec's own mounts.
	Files []FileMount
	// Network is called after clone and before the child goes on, with the
	// child's host pid and an fd of its network namespace (-1 when the
	// service shares the supervisor's network).
	Network func(pid, nsFD int) error
	// Timeout bounds the whole handshake (0 = 10s).
	Timeout time.Duration
	// OnExit is called once when a started process has exited (not when
	// Start fails). It must not block.
	OnExit func(Exit)
}

// Exit is how a service's main process ended.
type Exit struct {
	Code      int         // exit code, -1 if killed by a signal
	Signal    unix.Signal // the signal that killed it, or 0
	OOMKilled bool        // the kernel's OOM killer killed a process of the service
	Time      time.Time
}

// Success is a clean exit with code 0.
func (e Exit) Success() bool { return e.Code == 0 && e.Signal == 0 }

// Reason is the short human form used in logs and status: "exited 3",
// "killed by SIGKILL", "oom-killed".
func (e Exit) Reason() string {
	switch {
	case e.OOMKilled && e.Signal == unix.SIGKILL:
		return "oom-killed"
	case e.Signal != 0 && e.OOMKilled:
		return "killed by " + unix.SignalName(e.Signal) + " (oom-kill in cgroup)"
	case e.Signal != 0:
		return "killed by " + unix.SignalName(e.Signal)
	case e.OOMKilled:
		return "exited " + strconv.Itoa(e.Code) + " (oom-kill in cgroup)"
	}
	return "exited " + strconv.Itoa(e.Code)
}

// Process is one started container.
type Process struct {
	Pid   int
	Group *Group
	// Degraded lists what of the sandbox or limits did not take effect,
	// for a service that allows it (else the start failed).
	Degraded []string
	// Notes lists optional steps the child stage skipped (a name file the
	// read-only root has no place for).
	Notes []string

	pidfd     int
	onExit    func(Exit)
	oomBefore uint64

	mu      sync.Mutex
	started bool
	exited  bool
	early   chan reaper.Exit // exit before Start returned

	// Init mode: the child stage reports the service's real wait status,
	// takes reload commands, and the service is its child.
	initStatus *uint32
	sockDone   chan struct{}
	initConn   *net.UnixConn
	servicePid int
	reloads    chan error
	reloadPid  atomic.Int64  // the running reload command, for notify_access=exec
	forked     chan struct{} // open while a reload command's pid is awaited (mu)
}

// ReloadPid is the pid of the reload command while it runs, else 0.
func (p *Process) ReloadPid() int { return int(p.reloadPid.Load()) }

// AwaitReloadPid is ReloadPid, except that while a reload command was
// asked for but its pid is not known yet it waits (up to d) for the pid:
// the command's first notify datagram can overtake the child stage's
// report of its fork.
func (p *Process) AwaitReloadPid(d time.Duration) int {
	p.mu.Lock()
	ch := p.forked
	p.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-time.After(d):
		}
	}
	return p.ReloadPid()
}

// reloadSettled ends a wait in AwaitReloadPid.
func (p *Process) reloadSettled() {
	p.mu.Lock()
	if p.forked != nil {
		close(p.forked)
		p.forked = nil
	}
	p.mu.Unlock()
}

// Start creates the cgroup, clones the child stage into new namespaces,
// runs the network hook and the handshake, and returns once the service
// has been exec'd. On error nothing is left running and the cgroup is gone.
func (r *Runtime) Start(o StartOptions) (p *Process, err error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	deadline := time.Now().Add(o.Timeout)
	spec := o.Spec
	g, err := r.Cgroups.Create(spec.Name, spec.Limits)
	if err != nil {
		return nil, err
	}
	p = &Process{Group: g, pidfd: -1, onExit: o.OnExit, early: make(chan reaper.Exit, 1)}
	p.oomBefore, _ = g.OOMKills()
	defer func() {
		if err != nil {
			p.abort()
		}
	}()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return p, fmt.Errorf("socketpair for %s: %w", spec.Name, os.NewSyscallError("socketpair", err))
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return p, fmt.Errorf("socketpair for %s: %w", spec.Name, err)
	}
	parentFile := os.NewFile(uintptr(fds[0]), "handshake")
	conn, err := net.FileConn(parentFile)
	parentFile.Close()
	if err != nil {
		unix.Close(fds[1])
		return p, fmt.Errorf("handshake socket for %s: %w", spec.Name, err)
	}
	uc := conn.(*net.UnixConn)
	keepConn := false
	defer func() {
		if !keepConn {
			uc.Close()
		}
	}()

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		unix.Close(fds[1])
		return p, err
	}
	defer devnull.Close()
	out := devnull
	if o.Output != nil {
		out = o.Output
	}

	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if !spec.HostNetwork {
		flags |= unix.CLONE_NEWNET
	}
	if spec.UserNS != nil {
		// Cloned together, the other namespaces are owned by the new user
		// namespace: the service's root is root only over its own.
		flags |= unix.CLONE_NEWUSER
	}
	// Setsid: a service is its own session, so a signal to corral's
	// process group (a terminal's ctrl-C, timeout(1)) does not reach it
	// behind the supervisor's back.
	sys := &syscall.SysProcAttr{Cloneflags: flags, Setsid: true}
	if g.FD() >= 0 {
		sys.UseCgroupFD = true
		sys.CgroupFD = g.FD()
	}
	if m := spec.UserNS; m != nil {
		// The maps must be in place before the child stage's exec: an exec
		// by an unmapped (so not root) process drops its capabilities in
		// the new namespace. Go writes them while the child waits.
		// The child must also become the namespace's root (host uid 0 is
		// not in the map, so it would be nobody): Go switches credentials
		// after writing the maps, before the exec.
		idmap := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.HostID), Size: int(m.Size)}}
		sys.UidMappings, sys.GidMappings = idmap, idmap
		sys.GidMappingsEnableSetgroups = true
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	self := r.Self
	if self == "" {
		self = "/proc/self/exe"
	}
	files := []uintptr{devnull.Fd(), out.Fd(), out.Fd(), uintptr(fds[1])}
	notifyFD := -1
	if o.NotifyDir != "" {
		// A detached, read-only clone made here: the child only attaches
		// it (a path it may not walk, a mount it could not clone from
		// another mount namespace).
		nfd, err := unix.OpenTree(unix.AT_FDCWD, o.NotifyDir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err == nil {
			err = unix.MountSetattr(nfd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC})
			if err != nil {
				unix.Close(nfd)
			}
		}
		if err != nil {
			unix.Close(fds[1])
			return p, fmt.Errorf("clone notify directory %s: %w", o.NotifyDir, err)
		}
		defer unix.Close(nfd)
		files = append(files, uintptr(nfd))
		notifyFD = len(files) - 1
	}
	var fileBinds []fileBind
	for _, f := range o.Files {
		// The same for the files: the child attaches what it gets.
		ffd, err := detachedFile(f.Source)
		if err != nil {
			unix.Close(fds[1])
			return p, fmt.Errorf("clone %s for %s of %s: %w", f.Source, f.Target, spec.Name, err)
		}
		defer unix.Close(ffd)
		files = append(files, uintptr(ffd))
		fileBinds = append(fileBinds, fileBind{Source: f.Source, Target: f.Target, FD: len(files) - 1, Optional: f.Optional})
	}
	attr := &syscall.ProcAttr{
		Dir: "/",
		// GOMAXPROCS=1: the child stage is single-threaded work; fewer
		// threads means fewer pids charged before the exec. GOGC=off: it
		// lives a few milliseconds, a collection would only cost time (in
		// init mode it stays, but allocates next to nothing).
		Env:   []string{StageEnv + "=1", "GOMAXPROCS=1", "GOGC=off"},
		Files: files,
		Sys:   sys,
	}
	pid, err := r.Reaper.Start(func() (int, error) {
		pid, err := syscall.ForkExec(self, []string{"corral-child:" + spec.Name}, attr)
		if err != nil {
			return 0, err
		}
		// Under the reaper's lock the pid cannot be reaped and reused yet,
		// so this pidfd is the child's.
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			p.pidfd = fd
		}
		return pid, nil
	}, p.reaped)
	unix.Close(fds[1])
	if err != nil {
		return p, fmt.Errorf("clone child stage for %s: %w", spec.Name, err)
	}
	p.Pid = pid

	if err := g.AddProc(pid); err != nil {
		return p, err
	}
	if m := spec.UserNS; m != nil {
		// Delegate the cgroup to the container's root.
		if err := g.Chown(int(m.HostID), int(m.HostID)); err != nil {
			return p, fmt.Errorf("delegate the cgroup of %s: %w", spec.Name, err)
		}
	}
	if o.Network != nil {
		nsFD := -1
		if !spec.HostNetwork {
			nsFD, err = unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return p, fmt.Errorf("open network namespace of %s: %w", spec.Name, err)
			}
		}
		err = o.Network(pid, nsFD)
		if nsFD >= 0 {
			unix.Close(nsFD)
		}
		if err != nil {
			return p, err
		}
	}

	cfg := childConfig{Spec: spec, Staging: r.Staging, NotifyDir: o.NotifyDir, NotifyFD: notifyFD, Files: fileBinds}
	if err := sendMsg(uc, message{Type: msgConfig, Config: &cfg}); err != nil {
		return p, fmt.Errorf("send config to child stage of %s: %w", spec.Name, err)
	}
	_ = uc.SetReadDeadline(deadline)
	m, err := recvMsg(uc)
	if err != nil {
		return p, fmt.Errorf("child stage of %s: %w", spec.Name, p.explainEOF(err))
	}
	switch m.Type {
	case msgError:
		return p, m.Err
	case msgExec:
		p.Notes = m.Notes
		// The next read ends with EOF when exec closed the socket.
		m2, err := recvMsg(uc)
		switch {
		case errors.Is(err, io.EOF):
		case err != nil:
			return p, fmt.Errorf("child stage of %s: %w", spec.Name, err)
		case m2.Type == msgError:
			return p, m2.Err
		default:
			return p, fmt.Errorf("child stage of %s: unexpected message %q after exec", spec.Name, m2.Type)
		}
	case msgRunning:
		p.Notes = m.Notes
		keepConn = true
		p.sockDone = make(chan struct{})
		p.initConn = uc
		p.reloads = make(chan error, 1)
		if sp, err := p.HostPid(m.Pid); err == nil {
			p.servicePid = sp
		} else {
			p.servicePid = initChild(pid)
		}
		_ = uc.SetReadDeadline(time.Time{})
		go p.readInit(uc)
	default:
		return p, fmt.Errorf("child stage of %s: unexpected message %q", spec.Name, m.Type)
	}

	if problems := p.checkApplied(spec); len(problems) > 0 {
		if !spec.Security.AllowDegraded {
			return p, &SandboxError{Problems: problems}
		}
		p.Degraded = problems
	}

	p.mu.Lock()
	p.started = true
	var early *reaper.Exit
	select {
	case e := <-p.early:
		early = &e
	default:
	}
	p.mu.Unlock()
	if early != nil {
		go p.finish(*early)
	}
	return p, nil
}

// explainEOF turns "the child died before it said why" into a readable error.
func (p *Process) explainEOF(err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	select {
	case e := <-p.early:
		p.early <- e
		return fmt.Errorf("died during setup (%s)", Exit{Code: e.Code(), Signal: e.Signal()}.Reason())
	case <-time.After(time.Second):
		return errors.New("closed the handshake without a report")
	}
}

// readInit follows an init-mode child stage until it exits.
func (p *Process) readInit(uc *net.UnixConn) {
	defer close(p.sockDone)
	defer uc.Close()
	for {
		m, err := recvMsg(uc)
		if err != nil {
			return
		}
		switch m.Type {
		case msgExit:
			st := m.Status
			p.mu.Lock()
			p.initStatus = &st
			p.mu.Unlock()
		case msgForked:
			if hp, err := p.HostPid(m.Pid); err == nil {
				p.reloadPid.Store(int64(hp))
			}
			p.reloadSettled()
		case msgDone:
			p.reloadPid.Store(0)
			p.reloadSettled()
			var err error
			if ws := unix.WaitStatus(m.Status); !ws.Exited() || ws.ExitStatus() != 0 {
				err = fmt.Errorf("reload command %s", Exit{Code: exitCode(ws), Signal: exitSignal(ws)}.Reason())
			}
			if m.Err != nil {
				err = m.Err
			}
			select {
			case p.reloads <- err:
			default:
			}
		}
	}
}

func (p *Process) reaped(e reaper.Exit) {
	p.mu.Lock()
	p.exited = true
	started := p.started
	if !started {
		p.early <- e
	}
	p.mu.Unlock()
	if started {
		go p.finish(e)
	}
}

func (p *Process) finish(e reaper.Exit) {
	if p.sockDone != nil {
		select {
		case <-p.sockDone:
		case <-time.After(2 * time.Second):
		}
	}
	ex := Exit{Code: e.Code(), Signal: e.Signal(), Time: e.Time}
	p.mu.Lock()
	if p.initStatus != nil {
		ws := unix.WaitStatus(*p.initStatus)
		ex.Code, ex.Signal = -1, 0
		if ws.Exited() {
			ex.Code = ws.ExitStatus()
		} else if ws.Signaled() {
			ex.Signal = ws.Signal()
		}
	}
	p.mu.Unlock()
	if n, err := p.Group.OOMKills(); err == nil && n > p.oomBefore {
		ex.OOMKilled = true
	}
	if p.onExit != nil {
		p.onExit(ex)
	}
}

// abort undoes a failed Start: kill, wait for the exit, remove the cgroup.
func (p *Process) abort() {
	if p.Pid > 0 {
		_ = p.Kill()
		select {
		case <-p.early:
		case <-time.After(5 * time.Second):
		}
	}
	p.Cleanup()
}

// MainPid is the pid (in the caller's namespace) of the service's main
// process: the namespace's init, or in init mode the service the tiny
// init forked.
func (p *Process) MainPid() int {
	if p.servicePid > 0 {
		return p.servicePid
	}
	return p.Pid
}

// Reload runs argv inside the container through the init-mode child stage
// and waits (up to timeout) for it to exit successfully.
func (p *Process) Reload(argv []string, timeout time.Duration) error {
	if p.initConn == nil {
		return errors.New("a reload command needs [container] init = true")
	}
	select {
	case <-p.reloads: // a stale answer
	default:
	}
	p.mu.Lock()
	if p.forked == nil {
		p.forked = make(chan struct{})
	}
	p.mu.Unlock()
	defer p.reloadSettled()
	if err := sendMsg(p.initConn, message{Type: msgReload, Argv: argv}); err != nil {
		return fmt.Errorf("send reload command: %w", err)
	}
	select {
	case err := <-p.reloads:
		return err
	case <-p.sockDone:
		return ErrNotRunning
	case <-time.After(timeout):
		return fmt.Errorf("reload command still running after %s", timeout)
	}
}

// HostPid translates a pid as the service sees it (inside its pid
// namespace) into the caller's namespace, by looking for the process of the
// service's cgroup whose innermost NSpid is inner.
func (p *Process) HostPid(inner int) (int, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p.Pid))
	if err != nil {
		return 0, err
	}
	pids, err := p.Group.Procs()
	if err != nil {
		return 0, err
	}
	for _, hp := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hp))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "NSpid:" || f[len(f)-1] != strconv.Itoa(inner) {
				continue
			}
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", hp)); l == ns {
				return hp, nil
			}
		}
	}
	return 0, fmt.Errorf("no process %d in the service's pid namespace", inner)
}

// initChild finds the service forked by an init-mode child stage.
func initChild(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

func exitCode(ws unix.WaitStatus) int {
	if ws.Exited() {
		return ws.ExitStatus()
	}
	return -1
}

func exitSignal(ws unix.WaitStatus) unix.Signal {
	if ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// Signal sends sig to the service's main process. A service is PID 1 of
// its namespace: the kernel drops signals it has no handler for (except
// SIGKILL), which is why stop falls back to Kill after the stop timeout.
func (p *Process) Signal(sig unix.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return ErrNotRunning
	}
	if p.pidfd >= 0 {
		err := unix.PidfdSendSignal(p.pidfd, sig, nil, 0)
		if errors.Is(err, unix.ESRCH) {
			return ErrNotRunning
		}
		return err
	}
	return unix.Kill(p.Pid, sig)
}

// Kill kills every process of the service: the whole cgroup, and the
// namespace's init (which takes the whole pid namespace with it).
func (p *Process) Kill() error {
	err := p.Group.Kill()
	if serr := p.Signal(unix.SIGKILL); serr != nil && !errors.Is(serr, ErrNotRunning) && err == nil {
		err = serr
	}
	return err
}

// Cleanup releases what the process held: the pidfd and the cgroup. Call
// it after the exit was delivered.
func (p *Process) Cleanup() error {
	p.mu.Lock()
	if p.pidfd >= 0 {
		unix.Close(p.pidfd)
		p.pidfd = -1
	}
	p.mu.Unlock()
	return p.Group.Remove()
}

func sendMsg(w io.Writer, m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("handshake message of %d bytes is too large", len(b))
	}
	_, err = w.Write(b)
	return err
}

func recvMsg(r io.Reader) (message, error) {
	buf := make([]byte, maxMessage)
	n, err := r.Read(buf)
	if err != nil {
		return message{}, err
	}
	if n == 0 {
		return message{}, io.EOF
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		return message{}, fmt.Errorf("bad handshake message: %w", err)
	}
	return m, nil
}

// detachedFile makes a detached, read-only clone of the mount of one file,
// for a child stage to attach over a file of its root.
func detachedFile(path string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, err
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
