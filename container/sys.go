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
