package supervisor

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/container"
	"github.com/corral-init/corral/supervisor/config"
	"github.com/corral-init/corral/supervisor/notify"
)

// Runtime starts service instances. The real one (ContainerRuntime) runs
// containers; tests use a function-backed one.
type Runtime interface {
	// Start prepares and launches one instance and returns once it has
	// exec'd. On error nothing of the instance is left.
	Start(def *config.Service, h Hooks) (Instance, error)
}

// Hooks are how an instance reports back. They must not block for long.
type Hooks struct {
	// OnExit is called exactly once, when the main process has exited.
	OnExit func(container.Exit)
	// OnNotify is called for every accepted notify datagram, in order.
	// release, when not nil, must be called once the message and every one
	// before it have been handled (it answers BARRIER=1).
	OnNotify func(m notify.Message, release func())
	// OnOutput is called for every line the service prints, with when it
	// was read.
	OnOutput func(t time.Time, text string, partial bool)
}

// Instance is one running instance of a service.
type Instance interface {
	Pid() int
	Signal(unix.Signal) error
	// Kill kills every process of the instance.
	Kill() error
	// Cleanup releases the instance after its exit was delivered.
	Cleanup()
	// CgroupPath is the instance's cgroup directory ("" if none).
	CgroupPath() string
	// Reload sends the reload signal or runs the reload command.
	Reload() error
	// Degraded lists what of the sandbox did not take effect (allowed by
	// allow_degraded), or nil.
	Degraded() []string
	// Memory is the memory charged to the instance's cgroup, in bytes. It
	// may be called from any goroutine.
	Memory() (int64, error)
	// CPU is the CPU time the instance's cgroup has used. It may be called
	// from any goroutine.
	CPU() (time.Duration, error)
}
