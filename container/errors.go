package container

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinels callers branch on.
var (
	// ErrControllerUnavailable: a limit was asked for and the cgroup
	// controller that enforces it is not there. The start fails; corral never
	// runs a service with less than its file says.
	ErrControllerUnavailable = errors.New("cgroup controller unavailable")
	// ErrNotRunning: the process has already exited.
	ErrNotRunning = errors.New("process is not running")
)

// ChildError is a failure of the child stage before the service ran,
// carried back over the handshake socket.
type ChildError struct {
	Op    string        `json:"op"`             // what the child was doing: "mount", "pivot_root", "exec", ...
	Path  string        `json:"path,omitempty"` // the path it was doing it to, as the service sees it
	Errno syscall.Errno `json:"errno,omitempty"`
	Msg   string        `json:"msg,omitempty"` // extra detail, when there is no errno
}

func (e *ChildError) Error() string {
	s := e.Op
	if e.Path != "" {
		s += " " + e.Path
	}
	switch {
	case e.Errno != 0 && e.Msg != "":
		return fmt.Sprintf("%s: %s: %s", s, e.Msg, e.Errno.Error())
	case e.Errno != 0:
		return s + ": " + e.Errno.Error()
	case e.Msg != "":
		return s + ": " + e.Msg
	}
	return s
}

// Unwrap makes the errno reachable with errors.Is.
func (e *ChildError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// childErr builds a ChildError from an error returned by a syscall wrapper.
func childErr(op, path string, err error) *ChildError {
	ce := &ChildError{Op: op, Path: path}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		ce.Errno = errno
	} else if err != nil {
		ce.Msg = err.Error()
	}
	return ce
}
