package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
	// StateDir holds per-service runtime files (notify sockets).
	StateDir string
	Log      zerolog.Logger
}

// NotifySocketInContainer is NOTIFY_SOCKET as the service sees it.
var NotifySocketInContainer = filepath.Join(container.NotifyMount, notify.SocketName)

type containerInstance struct {
	proc   *container.Process
	sock   *notify.Socket
	dir    string
	output *os.File
}

// Start prepares (notify socket bound before the process exists, output
// pipe) and launches one container.
func (r *ContainerRuntime) Start(def *config.Service, h Hooks) (Instance, error) {
	log := r.Log.With().Str("svc", def.Name).Logger()
	dir := filepath.Join(r.StateDir, "svc", def.Name, "notify")
	sock, err := notify.Listen(dir)
	if err != nil {
		return nil, err
	}
	spec := def.Container
	spec.Env = append(slices.Clone(spec.Env), "NOTIFY_SOCKET="+NotifySocketInContainer)

	pr, pw, err := os.Pipe()
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("output pipe for %s: %w", def.Name, err)
	}
	var netHook func(pid, nsFD int) error
	switch def.Net.Mode {
	case cnet.ModeBridge:
		if r.Network == nil {
			pr.Close()
			pw.Close()
			sock.Close()
			return nil, fmt.Errorf("network for %s: the bridge network is not set up", def.Name)
		}
		netHook = func(pid, nsFD int) error {
			return r.Network.Attach(nsFD, cnet.HostIfName(def.Name), def.Net.Address)
		}
	case cnet.ModeNone:
		netHook = func(pid, nsFD int) error { return cnet.LoopbackUp(nsFD) }
	}
	timeout := def.StartTimeout
	if timeout <= 0 || timeout > 30*time.Second {
		timeout = 30 * time.Second
	}
	proc, err := r.Containers.Start(container.StartOptions{
		Spec:      spec,
		Output:    pw,
		NotifyDir: dir,
		Network:   netHook,
		Timeout:   timeout,
		OnExit:    h.OnExit,
	})
	pw.Close()
	if err != nil {
		pr.Close()
		sock.Close()
		return nil, err
	}
	inst := &containerInstance{proc: proc, sock: sock, dir: dir, output: pr}
	go readLines(pr, h.OnOutput)
	pidNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", proc.Pid))
	go sock.Serve(func(d notify.Datagram) {
		if ok, why := senderBelongs(proc.Group, pidNS, d.Pid); !ok {
			log.Warn().Int("pid", d.Pid).Msg("notify: datagram dropped: " + why)
			return
		}
		h.OnNotify(d.Msg)
	})
	return inst, nil
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
	return false, fmt.Sprintf("sender pid %d is not a process of the service (not in its cgroup or pid namespace)", pid)
}

func (i *containerInstance) Pid() int                     { return i.proc.Pid }
func (i *containerInstance) Signal(sig unix.Signal) error { return i.proc.Signal(sig) }
func (i *containerInstance) Kill() error                  { return i.proc.Kill() }
func (i *containerInstance) CgroupPath() string           { return i.proc.Group.Path() }
func (i *containerInstance) Memory() (int64, error)       { return i.proc.Group.MemoryCurrent() }

func (i *containerInstance) Cleanup() {
	_ = i.proc.Kill() // anything left in the cgroup (there should be nothing)
	_ = i.proc.Cleanup()
	_ = i.sock.Close()
	_ = os.Remove(i.dir)
	_ = os.Remove(filepath.Dir(i.dir))
}

// maxLine is where a long line is cut into parts (marked partial).
const maxLine = 4096

// readLines reads a service's output pipe until every writer has closed
// it. It never blocks the service beyond the pipe's own buffer: lines go
// to a ring and a non-blocking console.
func readLines(r io.ReadCloser, emit func(string, bool)) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			emit(string(line[:len(line)-1]), false)
		case errors.Is(err, bufio.ErrBufferFull):
			emit(string(line), true)
		default:
			if len(line) > 0 {
				emit(string(line), true) // no final newline
			}
			return
		}
	}
}
