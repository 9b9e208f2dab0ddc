package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/supervisor/config"
)

// findDevice resolves a /dev path, LABEL= or UUID= to a device node,
// waiting up to timeout for it to appear (a module still probing, a slow
// SD card).
func findDevice(spec string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if strings.HasPrefix(spec, "/dev/") {
			if _, err := os.Stat(spec); err == nil {
				return spec, nil
			}
		} else if dev := scanBlockDevices(spec); dev != "" {
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no device %s after %s", spec, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scanBlockDevices reads the superblock of every block device the kernel
// knows and returns the one spec names.
func scanBlockDevices(spec string) string {
	entries, _ := os.ReadDir("/sys/class/block")
	buf := make([]byte, 2048)
	for _, e := range entries {
		dev := "/dev/" + e.Name()
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		n, _ := io.ReadFull(f, buf)
		f.Close()
		if deviceMatches(spec, buf[:n]) {
			return dev
		}
	}
	return ""
}

// mountData mounts the data partition at /data and, if asked, binds
// /data/var over /var. A failure is logged and the boot goes on without it.
func mountData(s config.Storage, log zerolog.Logger) {
	if s.Data == "" {
		return
	}
	dev, err := findDevice(s.Data, 10*time.Second)
	if err == nil {
		err = os.MkdirAll("/data", 0o755)
	}
	if err == nil {
		err = unix.Mount(dev, "/data", s.FSType, unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID, "")
	}
	if err != nil {
		log.Error().Err(err).Str("device", s.Data).Msg("data partition not mounted: writable state stays in RAM")
		return
	}
	log.Info().Str("device", dev).Str("spec", s.Data).Msg("data partition mounted on /data")
	if !s.Var {
		return
	}
	if err := os.MkdirAll("/data/var", 0o755); err != nil {
		log.Error().Err(err).Msg("create /data/var")
		return
	}
	if err := unix.Mount("/data/var", "/var", "", unix.MS_BIND, ""); err != nil {
		log.Error().Err(err).Msg("bind /data/var over /var")
	}
}

// switchRoot hands the machine over to the real root file system, like
// busybox switch_root: mount it, move /dev, /proc, /sys and /run into it,
// free the initramfs, make it / and exec its /sbin/init. It returns only on
// failure, having changed nothing that the boot from the initramfs needs.
func switchRoot(b config.Boot, ls *logSetup) error {
	log := ls.log
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return err
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		return errors.New("/ is not an initramfs: not switching root")
	}
	dev, err := findDevice(b.Root, b.Timeout)
	if err != nil {
		return err
	}
	const newRoot = "/newroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	flags, data := mountOptions(b.Options)
	if err := unix.Mount(dev, newRoot, b.FSType, flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, b.FSType, newRoot, err)
	}
	if _, err := os.Lstat(newRoot + "/sbin/init"); err != nil {
		_ = unix.Unmount(newRoot, 0)
		return fmt.Errorf("the new root has no /sbin/init: %w", err)
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		if _, err := os.Stat(newRoot + d); err != nil {
			_ = unix.Unmount(newRoot, 0)
			return fmt.Errorf("the new root has no %s to move %s to", newRoot+d, d)
		}
	}
	log.Info().Str("device", dev).Str("root", b.Root).Msg("switching to the root file system")
	return enterRoot(newRoot, st, ls)
}

// enterRoot makes newRoot the root: /dev, /proc, /sys and /run move into
// it, the initramfs is freed, and its /sbin/init is exec'd. It returns only
// on failure.
func enterRoot(newRoot string, st unix.Statfs_t, ls *logSetup) error {
	log := ls.log
	_ = unix.Unmount("/tmp", unix.MNT_DETACH)
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		if err := unix.Mount(d, newRoot+d, "", unix.MS_MOVE, ""); err != nil {
			log.Error().Err(err).Str("dir", d).Msg("move mount into the new root")
		}
	}
	freeInitramfs(st, newRoot)
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the new root onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	_ = unix.Chdir("/")
	ls.con.Close() // flush: the exec replaces this process
	err := syscall.Exec("/sbin/init", os.Args, os.Environ())
	return fmt.Errorf("exec the new root's /sbin/init: %w", err)
}

// onRootfs reports whether / is the kernel's initramfs (rootfs), which
// pivot_root cannot leave: no container could start.
func onRootfs() bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	fstype := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if lf, rf := strings.Fields(left), strings.Fields(right); ok && len(lf) > 4 && len(rf) > 0 && lf[4] == "/" {
			fstype = rf[0] // the last mount on / is the one in effect
		}
	}
	return fstype == "rootfs"
}

// leaveRootfs copies the initramfs into a tmpfs and makes that the root,
// as LinuxKit's init does: containers need a root pivot_root can leave.
func leaveRootfs(ls *logSetup) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return err
	}
	const newRoot = "/newroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", newRoot, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount a tmpfs root: %w", err)
	}
	n, err := copyTree("/", newRoot)
	if err != nil {
		_ = unix.Unmount(newRoot, unix.MNT_DETACH)
		return fmt.Errorf("copy the initramfs: %w", err)
	}
	ls.log.Info().Int("files", n).Msg("the initramfs is rootfs, which containers cannot pivot out of: copied into a tmpfs root")
	return enterRoot(newRoot, st, ls)
}

// copyTree copies the file system at src (one file system: mount points
// below it stay empty directories) into dst, keeping modes, owners,
// symlinks and device nodes.
func copyTree(src, dst string) (int, error) {
	var root unix.Stat_t
	if err := unix.Lstat(src, &root); err != nil {
		return 0, err
	}
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == src {
			return nil
		}
		var s unix.Stat_t
		if err := unix.Lstat(p, &s); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if out == dst || strings.HasPrefix(p, dst) {
			return filepath.SkipDir
		}
		mode := s.Mode & 0o7777
		switch s.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := os.Mkdir(out, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			defer func() { _ = unix.Chmod(out, mode); _ = unix.Lchown(out, int(s.Uid), int(s.Gid)) }()
			if s.Dev != root.Dev {
				return filepath.SkipDir // a mount point: moved, not copied
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, out); err != nil {
				return err
			}
		case unix.S_IFREG:
			if err := copyFile(p, out, os.FileMode(mode)); err != nil {
				return err
			}
		default: // device nodes, fifos, sockets
			if err := unix.Mknod(out, s.Mode, int(s.Rdev)); err != nil {
				return err
			}
		}
		_ = unix.Lchown(out, int(s.Uid), int(s.Gid))
		if s.Mode&unix.S_IFMT != unix.S_IFLNK {
			_ = unix.Chmod(out, mode)
		}
		n++
		return nil
	})
	return n, err
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// freeInitramfs deletes the initramfs's files (its RAM is not freed
// otherwise), staying on its own file system: never into newRoot or any
// other mount.
func freeInitramfs(st unix.Statfs_t, newRoot string) {
	var root unix.Stat_t
	if unix.Lstat("/", &root) != nil {
		return
	}
	var dirs []string
	_ = filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var s unix.Stat_t
		if unix.Lstat(p, &s) != nil || s.Dev != root.Dev || p == newRoot {
			if d.IsDir() && p != "/" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != "/" {
				dirs = append(dirs, p)
			}
			return nil
		}
		_ = os.Remove(p)
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i]) // fails for mount points and non-empty dirs: fine
	}
}

// emergencyShell runs /bin/sh on the console while the configuration
// cannot be read, restarting it (never faster than once a second) until a
// shutdown signal arrives. Without a shell it just waits for the signal.
func emergencyShell(log zerolog.Logger, sigc <-chan os.Signal) os.Signal {
	if _, err := os.Stat("/bin/sh"); err != nil {
		log.Warn().Msg("no /bin/sh for an emergency shell; waiting for a shutdown signal")
		return <-sigc
	}
	for {
		log.Warn().Msg("starting an emergency shell on the console (exit it to get another; a shutdown signal ends it)")
		exited := make(chan struct{})
		pid, err := syscall.ForkExec("/bin/sh", []string{"-sh"}, &syscall.ProcAttr{
			Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=linux"},
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
		})
		if err != nil {
			log.Error().Err(err).Msg("emergency shell")
		} else {
			go func() {
				var ws unix.WaitStatus
				for {
					_, err := unix.Wait4(pid, &ws, 0, nil)
					if !errors.Is(err, unix.EINTR) {
						break
					}
				}
				close(exited)
			}()
		}
		select {
		case sig := <-sigc:
			if err == nil {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			return sig
		case <-exited:
		case <-time.After(time.Hour):
		}
		time.Sleep(time.Second)
	}
}
