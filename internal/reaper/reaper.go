// Package reaper is the only caller of wait4 in corral.
//
// # Why one reaper
//
// PID 1 (and a subreaper) inherits every orphan, so it must reap with
// wait4(-1). Any other wait (exec.Cmd.Wait, os.Process.Wait) would race with
// that loop and lose exit codes. So every child corral starts is started
// through Start, which registers the pid before the reap loop can deliver
// its exit: the fork happens while the dispatch lock is held.
//
// # Delivery
//
// On every SIGCHLD the loop calls wait4(-1, WNOHANG) until nothing is left,
// and hands each exit to the callback registered for that pid. Exits of
// pids nobody registered (orphans re-parented to PID 1) are counted and
// kept in a small bounded table for debugging (Unclaimed).
package reaper

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Exit is one reaped child.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
	Rusage unix.Rusage
	Time   time.Time
}

// Code is the exit code, or -1 when the process was killed by a signal.
func (e Exit) Code() int {
	if e.Status.Exited() {
		return e.Status.ExitStatus()
	}
	return -1
}

// Signal is the signal that killed the process, or 0.
func (e Exit) Signal() unix.Signal {
	if e.Status.Signaled() {
		return e.Status.Signal()
	}
	return 0
}

// maxUnclaimed bounds the table of exits nobody registered for.
const maxUnclaimed = 256

// Reaper reaps children and routes their exits by pid.
type Reaper struct {
	mu        sync.Mutex
	subs      map[int]func(Exit)
	unclaimed map[int]Exit
	orphans   uint64

	sigc chan os.Signal
	done chan struct{}
	wg   sync.WaitGroup
	now  func() time.Time
}

// New starts the reap loop. Close stops it.
func New() *Reaper {
	r := &Reaper{
		subs:      make(map[int]func(Exit)),
		unclaimed: make(map[int]Exit),
		sigc:      make(chan os.Signal, 1),
		done:      make(chan struct{}),
		now:       time.Now,
	}
	signal.Notify(r.sigc, unix.SIGCHLD)
	r.wg.Add(1)
	go r.loop()
	// Children may have exited before we subscribed to SIGCHLD.
	r.sigc <- unix.SIGCHLD
	return r
}

// Close stops the reap loop. Children still running are not touched.
func (r *Reaper) Close() {
	signal.Stop(r.sigc)
	close(r.done)
	r.wg.Wait()
}

// Start runs fork, which must start exactly one child and return its pid,
// and registers onExit for that pid before any exit can be dispatched.
// onExit is called once, from the reap goroutine: it must not block.
func (r *Reaper) Start(fork func() (int, error), onExit func(Exit)) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, err
	}
	if pid <= 0 {
		return 0, errors.New("reaper: fork returned no pid")
	}
	// An exit kept for this pid belongs to an earlier process that had the
	// same pid: it is not this child's.
	delete(r.unclaimed, pid)
	r.subs[pid] = onExit
	return pid, nil
}

// Unclaimed returns the exit kept for pid, if an unregistered child with
// that pid was reaped.
func (r *Reaper) Unclaimed(pid int) (Exit, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.unclaimed[pid]
	return e, ok
}

// Orphans returns how many exits of unregistered children were reaped.
func (r *Reaper) Orphans() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

func (r *Reaper) loop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.done:
			return
		case <-r.sigc:
			r.reapAll()
		}
	}
}

func (r *Reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none exited yet
		}
		if !ws.Exited() && !ws.Signaled() {
			continue // stopped/continued; we did not ask for those
		}
		r.dispatch(Exit{Pid: pid, Status: ws, Rusage: ru, Time: r.now()})
	}
}

func (r *Reaper) dispatch(e Exit) {
	r.mu.Lock()
	fn, ok := r.subs[e.Pid]
	if ok {
		delete(r.subs, e.Pid)
	} else {
		r.orphans++
		if len(r.unclaimed) >= maxUnclaimed {
			for k := range r.unclaimed {
				delete(r.unclaimed, k)
				break
			}
		}
		r.unclaimed[e.Pid] = e
	}
	r.mu.Unlock()
	if ok {
		fn(e)
	}
}
