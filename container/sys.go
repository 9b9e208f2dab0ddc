package container

import (
	"errors"
	"os"
	"syscall"
)

// These use package syscall, not x/sys/unix, so the cgroup code (plain
// file writes) builds on any unix and config can import Spec anywhere.

const syscallEBUSY = syscall.EBUSY

// writeFile writes a cgroup (or proc) file in one write(2). Kernel files
// report errors from the write itself, not from open.
func writeFile(path, val string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(val))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func openDir(path string) (int, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

func closeFD(fd int) { _ = syscall.Close(fd) }

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// ErrLocked is LockDir's answer when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// LockDir takes an exclusive flock(2) on a directory, held until the
// process exits or execs (the descriptor is close-on-exec). The lock is on
// the inode, so it holds across mount and pid namespaces: two supervisors
// on one cgroup subtree or one state directory see each other whatever
// namespaces they were started in.
func LockDir(path string) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return ErrLocked
		}
		return err
	}
	return nil // fd stays open: it is the lock
}
