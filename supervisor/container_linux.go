package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	cnet "github.com/corral-init/corral/net"
	"github.com/corral-init/corral/supervisor/config"
	"github.com/corral-init/corral/supervisor/notify"
)

// ContainerRuntime is the real Runtime: each instance is a container with
// its own cgroup, notify socket, output pipe and network.
type ContainerRuntime struct {
	Containers *container.Runtime
	// Network is the bridge network; nil when no service uses it.
	Network *cnet.Network
	// StateDir holds per-service runtime files (notify sockets, the
	// containers' /etc/hosts and /etc/resolv.conf).
	StateDir string
	// Hide are directories no service sees unless it mounts into them
	// (the data partition).
	Hide []string
	// Hosts are the names every container's /etc/hosts lists (see
	// NetworkPlan).
	Hosts []cnet.Host
	// DNS are the nameservers of corral.toml; none means the
	// supervisor's own, read from HostResolv at every start.
	DNS []netip.Addr
	// HostResolv is the supervisor's resolv.conf ("" = /etc/resolv.conf).
	HostResolv string
	Log        zerolog.Logger
	// Output, when set, is every service's stdout and stderr, as it is
	// (corral run: the caller's terminal). Otherwise each service gets a
	// pipe read line by line into its log stream.
	Output *os.File

	launchOnce sync.Once
	launching  chan struct{}
	warned     sync.Map // service name -> true: said that it has no nameserver
}

// maxLaunches bounds the containers being set up at once. A boot starts
// everything together; each setup blocks in syscalls (fork and exec, cgroup
// writes), and every blocked one costs Go a thread, kept for good: a
// hundred at once left corral with 40 threads (about 2 MB) for nothing.
const maxLaunches = 4

// NotifySocketInContainer is NOTIFY_SOCKET as the service sees it.
var NotifySocketInContainer = filepath.Join(container.NotifyMount, notify.SocketName)

type containerInstance struct {
	proc   *container.Process
	sock   *notify.Socket
	dir    string
	files  []string // the container's /etc files, removed by Cleanup
	netOff func()   // gives back IPv4 forwarding (nil: not held)
	output *os.File
	def    *config.Service
	log    zerolog.Logger
	pidNS  string // the service's pid namespace, as /proc/<pid>/ns/pid reads

	access  atomic.Uint32 // config.NotifyAccess; NOTIFYACCESS= changes it
	mainPid atomic.Int64  // MAINPID= changes it
	drops   dropLog
}

// Start prepares (notify socket bound before the process exists, output
// pipe) and launches one container.
func (r *ContainerRuntime) Start(def *config.Service, h Hooks) (Instance, error) {
	log := r.Log.With().Str("svc", def.Name).Logger()
	// svc/ is root's alone: a notify socket accepts any sender that can
	// reach it (a sender that exited counts), so no other host user may.
	svcDir := filepath.Join(r.StateDir, "svc")
	if err := os.MkdirAll(svcDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", svcDir, err)
	}
	_ = os.Chmod(svcDir, 0o700)
	dir := filepath.Join(svcDir, def.Name, "notify")
	sock, err := notify.Listen(dir)
	if err != nil {
		return nil, err
	}
	// A launch that fails leaves no directory behind (Cleanup does this
	// for one that ran).
	closeSock := func() {
		sock.Close()
		_ = os.Remove(dir)
		_ = os.Remove(filepath.Dir(dir))
	}
	spec := def.Container
	spec.Env = append(slices.Clone(spec.Env), "NOTIFY_SOCKET="+NotifySocketInContainer)
	spec.Security.Hide = r.Hide
	// Fault injection for the tests of the check after start: pretend this
	// kernel has no seccomp for the named service.
	if v := os.Getenv("CORRAL_FAULT_NO_SECCOMP"); v != "" && v == def.Name {
		spec.Security.FaultNoSeccomp = true
	}
	if def.Watchdog > 0 {
		spec.Env = append(spec.Env, fmt.Sprintf("WATCHDOG_USEC=%d", def.Watchdog.Microseconds()))
		if !spec.Init {
			// The service is PID 1 of its namespace. In init mode its pid
			// is not known before the fork, and sd_watchdog_enabled()
			// accepts a missing WATCHDOG_PID.
			spec.Env = append(spec.Env, "WATCHDOG_PID=1")
		}
	}

	files, mounts, err := r.writeNameFiles(def, filepath.Dir(dir))
	if err != nil {
		closeSock()
		return nil, err
	}
	removeFiles := func() {
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
	var pr, pw *os.File
	if r.Output != nil {
		pw = r.Output
	} else if pr, pw, err = os.Pipe(); err != nil {
		removeFiles()
		closeSock()
		return nil, fmt.Errorf("output pipe for %s: %w", def.Name, err)
	}
	closeOut := func() {
		if pr != nil {
			pr.Close()
			pw.Close()
		}
	}
	var netHook func(pid, nsFD int) error
	var netOff func()
	switch def.Net.Mode {
	case cnet.ModeBridge:
		if r.Network == nil {
			closeOut()
			removeFiles()
			closeSock()
			return nil, fmt.Errorf("network for %s: the bridge network is not set up", def.Name)
		}
		netHook = func(pid, nsFD int) error {
			if !def.Net.Isolated {
				off, err := r.Network.Forward()
				if err != nil {
					return fmt.Errorf("network for %s: %w", def.Name, err)
				}
				netOff = off
			}
			return r.Network.Attach(nsFD, cnet.HostIfName(def.Name), def.Net.Address)
		}
	case cnet.ModeNone:
		netHook = func(pid, nsFD int) error { return cnet.LoopbackUp(nsFD) }
	}
	// The container's setup (clone to exec) has its own bound, apart from
	// start_timeout (which counts from the exec): generous, because a slow
	// SD card or an emulated CPU makes it slow, and it is corral's own code.
	const timeout = 30 * time.Second
	r.launchOnce.Do(func() { r.launching = make(chan struct{}, maxLaunches) })
	r.launching <- struct{}{}
	proc, err := r.Containers.Start(container.StartOptions{
		Spec:      spec,
		Output:    pw,
		NotifyDir: dir,
		Files:     mounts,
		Network:   netHook,
		Timeout:   timeout,
		OnExit:    h.OnExit,
	})
	<-r.launching
	if pr != nil {
		pw.Close()
	}
	if err != nil {
		if netOff != nil {
			netOff()
		}
		if pr != nil {
			pr.Close()
		}
		removeFiles()
		closeSock()
		return nil, err
	}
	for _, n := range proc.Notes {
		r.warnOnce(def.Name+"\x00"+n, def.Name, n)
	}
	inst := &containerInstance{proc: proc, sock: sock, dir: dir, files: files, netOff: netOff, output: pr, def: def, log: log}
	inst.access.Store(uint32(def.NotifyAccess))
	inst.mainPid.Store(int64(proc.MainPid()))
	inst.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", proc.Pid))
	if pr != nil {
		go readLines(pr, h.OnOutput)
	}
	go sock.Serve(func(d notify.Datagram) { inst.datagram(d, h) })
	return inst, nil
}

// datagram applies notify_access, MAINPID= and NOTIFYACCESS=, then hands
// the message to the actor. A BARRIER=1 fd is closed only when the actor
// has handled everything before it.
func (i *containerInstance) datagram(d notify.Datagram, h Hooks) {
	release := func() {
		for _, fd := range d.FDs {
			unix.Close(fd)
		}
	}
	if ok, why := i.allowed(config.NotifyAccess(i.access.Load()), d.Pid); !ok {
		release()
		i.drops.note(i.log, why)
		return
	}
	if v, ok := d.Msg.Fields["MAINPID"]; ok {
		i.setMainPid(v, d.Pid)
	}
	if v, ok := d.Msg.Fields["NOTIFYACCESS"]; ok {
		if na, ok := config.ParseNotifyAccess(v); ok {
			i.access.Store(uint32(na))
			i.log.Info().Str("notify_access", v).Msg("notify: NOTIFYACCESS changed by the service")
		} else {
			i.log.Warn().Str("value", v).Msg("notify: unknown NOTIFYACCESS= ignored")
		}
	}
	if len(d.FDs) == 0 {
		release = nil
	}
	h.OnNotify(d.Msg, release)
}

// allowed applies notify_access to a sender (a pid in corral's namespace).
func (i *containerInstance) allowed(access config.NotifyAccess, pid int) (bool, string) {
	switch access {
	case config.NotifyNone:
		return false, fmt.Sprintf("datagram from pid %d dropped: notify_access is none", pid)
	case config.NotifyMain, config.NotifyExec:
		main := int(i.mainPid.Load())
		if access == config.NotifyExec && pid != main && pid == i.proc.AwaitReloadPid(250*time.Millisecond) {
			return true, "" // the reload command is a control process
		}
		if pid != main {
			return false, fmt.Sprintf("datagram from pid %d rejected: notify_access is %s and the main process is pid %d", pid, access, main)
		}
		return true, ""
	}
	return senderBelongs(i.proc.Group, i.pidNS, pid)
}

// setMainPid applies MAINPID=: a pid as the sender sees it. From inside the
// service's pid namespace it is translated; from outside it must already be
// a process of the service.
func (i *containerInstance) setMainPid(v string, sender int) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		i.log.Warn().Str("value", v).Msg("notify: MAINPID= is not a pid; ignored")
		return
	}
	host := n
	if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", sender)); ns == i.pidNS && i.pidNS != "" {
		if host, err = i.proc.HostPid(n); err != nil {
			i.log.Warn().Int("mainpid", n).Err(err).Msg("notify: MAINPID= rejected")
			return
		}
	} else if ok, _ := i.proc.Group.Contains(n); !ok {
		i.log.Warn().Int("mainpid", n).Msg("notify: MAINPID= rejected: not a process of the service")
		return
	}
	i.mainPid.Store(int64(host))
	i.log.Info().Int("pid", host).Int("mainpid", n).Msg("notify: main process changed (MAINPID=)")
}

// dropLog rate-limits the log line for dropped datagrams: one line per
// ten seconds, with the count.
type dropLog struct {
	mu    sync.Mutex
	last  time.Time
	count int
}

func (d *dropLog) note(log zerolog.Logger, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.count++
	if now := time.Now(); now.Sub(d.last) >= 10*time.Second {
		log.Warn().Int("dropped", d.count).Msg("notify: " + why)
		d.last, d.count = now, 0
	}
}

// senderBelongs decides whether a notify datagram's sender (a pid in
// corral's pid namespace) is a process of the service: in its cgroup, or in
// its pid namespace. A sender that already exited (gone, or a zombie, whose
// cgroup the kernel no longer reports) still counts: the socket is only
// reachable from the service's container, and by root on the host.
func senderBelongs(g *container.Group, pidNS string, pid int) (bool, string) {
	if ok, err := g.Contains(pid); ok {
		return true, ""
	} else if errors.Is(err, os.ErrNotExist) {
		return true, ""
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true, "" // exiting: a zombie has no namespaces left
	}
	if err == nil && pidNS != "" && ns == pidNS {
		return true, ""
	}
	return false, fmt.Sprintf("datagram from pid %d rejected: not a process of the service (not in its cgroup or pid namespace)", pid)
}

func (i *containerInstance) Pid() int { return int(i.mainPid.Load()) }

// Signal signals the main process. When MAINPID= named another process
// than the namespace's init, both get it: corral follows the init's exit
// (its death ends the namespace), so the init must hear the stop too.
// In init mode the tiny init forwards it to the service.
func (i *containerInstance) Signal(sig unix.Signal) error {
	if main := int(i.mainPid.Load()); main != i.proc.MainPid() {
		_ = unix.Kill(main, sig)
	}
	return i.proc.Signal(sig)
}

// Reload sends the reload signal, or runs the reload command inside the
// container (through the init-mode child stage).
func (i *containerInstance) Reload() error {
	if len(i.def.Reload) > 0 {
		return i.proc.Reload(i.def.Reload, i.def.StartTimeout)
	}
	return i.Signal(i.def.ReloadSignal)
}
func (i *containerInstance) Kill() error                 { return i.proc.Kill() }
func (i *containerInstance) CgroupPath() string          { return i.proc.Group.Path() }
func (i *containerInstance) Memory() (int64, error)      { return i.proc.Group.MemoryCurrent() }
func (i *containerInstance) CPU() (time.Duration, error) { return i.proc.Group.CPUUsage() }
func (i *containerInstance) Degraded() []string          { return i.proc.Degraded }

func (i *containerInstance) Cleanup() {
	// Anything left in the cgroup? Normally nothing: the namespace's init
	// took its pid namespace with it. Killing an empty group (freezing it,
	// on v1) would only cost time on the restart path.
	if procs, err := i.proc.Group.Procs(); err != nil || len(procs) > 0 {
		_ = i.proc.Kill()
	}
	_ = i.proc.Cleanup()
	if i.netOff != nil {
		// After the exit: the service's namespace (and veth) goes with its
		// last process, which the cgroup kill above made sure of.
		i.netOff()
	}
	_ = i.sock.Close()
	for _, f := range i.files {
		_ = os.Remove(f)
	}
	_ = os.Remove(i.dir)
	_ = os.Remove(filepath.Dir(i.dir))
}

// writeNameFiles writes the container's /etc/hosts and /etc/resolv.conf
// into its state directory and returns them with their binds.
//
// They are written in place (truncated and rewritten, never replaced by
// a rename): a bind mount holds the inode, so only an in-place write
// reaches a container that has the file bound. Addresses do not change
// while corral runs, so a start is the only time they are written.
func (r *ContainerRuntime) writeNameFiles(def *config.Service, dir string) (files []string, mounts []container.FileMount, err error) {
	hostname := def.Container.Hostname
	if hostname == "" {
		hostname = def.Name
	}
	hosts := cnet.HostsFile(def.Name, hostname, def.Net.Address, r.Hosts)
	hostResolv := r.HostResolv
	if hostResolv == "" {
		hostResolv = "/etc/resolv.conf"
	}
	host, rerr := os.ReadFile(hostResolv)
	if rerr != nil && len(r.DNS) == 0 {
		r.warnOnce(def.Name, def.Name, fmt.Sprintf("no nameserver for the service: read %s: %v", hostResolv, rerr))
	}
	resolv, dropped := cnet.ResolvConf(host, r.DNS, def.Net.Mode != cnet.ModeHost)
	if len(dropped) > 0 && !strings.Contains(string(resolv), "nameserver") {
		r.warnOnce(def.Name, def.Name, fmt.Sprintf("no nameserver for the service: the supervisor's (%v) are on loopback, which is the service's own; set [network] dns in corral.toml", dropped))
	}
	for _, f := range []struct {
		name, target string
		data         []byte
	}{{"hosts", "/etc/hosts", hosts}, {"resolv.conf", "/etc/resolv.conf", resolv}} {
		p := filepath.Join(dir, f.name)
		if err := writeInPlace(p, f.data); err != nil {
			for _, done := range files {
				_ = os.Remove(done)
			}
			return nil, nil, fmt.Errorf("write %s for %s: %w", f.target, def.Name, err)
		}
		files = append(files, p)
		// Optional: an image without the file and with a read-only root
		// still runs its services (as systemd-nspawn does), with a warning.
		mounts = append(mounts, container.FileMount{Source: p, Target: f.target, Optional: true})
	}
	return files, mounts, nil
}

// warnOnce logs msg for svc the first time key is seen.
func (r *ContainerRuntime) warnOnce(key, svc, msg string) {
	if _, done := r.warned.LoadOrStore(key, true); !done {
		r.Log.Warn().Str("svc", svc).Msg(msg)
	}
}

// writeInPlace writes data into path, keeping its inode when it exists.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxLine is where a long line is cut into parts (marked partial).
const maxLine = 4096

// readLines reads a service's output pipe until every writer has closed
// it. It never blocks the service beyond the pipe's own buffer: lines go
// to a ring and a non-blocking console.
//
// A line's time is when the read that completed it returned: one clock
// read per pipe read, not per line (a flood of short lines spent 44% of
// corral's CPU in clock_gettime).
func readLines(r io.ReadCloser, emit func(time.Time, string, bool)) {
	defer r.Close()
	tr := &timedReader{r: r}
	br := bufio.NewReaderSize(tr, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			emit(tr.at, string(line[:len(line)-1]), false)
		case errors.Is(err, bufio.ErrBufferFull):
			emit(tr.at, string(line), true)
		default:
			if len(line) > 0 {
				emit(tr.at, string(line), true) // no final newline
			}
			return
		}
	}
}

// timedReader notes when each of its reads returned.
type timedReader struct {
	r  io.Reader
	at time.Time
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.at = time.Now()
	return n, err
}
