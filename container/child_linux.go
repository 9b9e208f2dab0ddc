package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// handshakeFD is the child's end of the handshake socket.
const handshakeFD = 3

// IsChildStage reports whether this process was started as a child stage.
func IsChildStage() bool { return os.Getenv(StageEnv) != "" }

// ChildMain is the child stage: it runs between clone and the service's
// exec and never returns. Every phase is one linear function; any failure
// is reported over the handshake socket as a ChildError.
func ChildMain() {
	// Namespace and credential changes below apply to this thread, which
	// is the one that execs: never let the goroutine move.
	runtime.LockOSThread()
	unix.CloseOnExec(handshakeFD)
	for fd := handshakeFD + 1; fd < handshakeFD+4; fd++ {
		unix.CloseOnExec(fd) // the notify directory fd, if any: never the service's
	}

	cfg, err := readConfig()
	if err != nil {
		childFail(&ChildError{Op: "read config", Msg: err.Error()})
	}
	spec := cfg.Spec
	if len(spec.Args) == 0 {
		childFail(&ChildError{Op: "exec", Msg: "no command"})
	}
	// Now that the parent has placed us in our cgroup (v1) or we were born
	// there (v2), make it the root of our cgroup namespace.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		childFail(childErr("unshare cgroup namespace", "", err))
	}
	if ce := setupRoot(cfg); ce != nil {
		childFail(ce)
	}
	host := spec.Hostname
	if host == "" {
		host = spec.Name
	}
	if err := unix.Sethostname([]byte(host)); err != nil {
		childFail(childErr("sethostname", host, err))
	}
	creds, ce := lookupCredentials(spec)
	if ce != nil {
		childFail(ce)
	}
	env := withUserEnv(spec.Env, spec.User != "", creds)
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if err := unix.Chdir(dir); err != nil {
		childFail(childErr("chdir", dir, err))
	}
	if ce := applySandbox(spec.Security, creds, spec.User != "" || spec.Group != ""); ce != nil {
		childFail(ce)
	}
	if spec.Init {
		runInit(spec, env) // never returns
	}
	if err := send(message{Type: msgExec, Notes: childNotes}); err != nil {
		os.Exit(ChildFailedCode)
	}
	err = unix.Exec(spec.Args[0], spec.Args, env)
	childFail(childErr("exec", spec.Args[0], err))
}

func readConfig() (childConfig, error) {
	buf := make([]byte, maxMessage)
	for {
		n, err := unix.Read(handshakeFD, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return childConfig{}, err
		}
		if n == 0 {
			// The parent went away before sending the config.
			os.Exit(ChildFailedCode)
		}
		var m message
		if err := json.Unmarshal(buf[:n], &m); err != nil {
			return childConfig{}, err
		}
		if m.Type != msgConfig || m.Config == nil {
			return childConfig{}, errors.New("expected a config message")
		}
		return *m.Config, nil
	}
}

func send(m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	for {
		_, err = unix.Write(handshakeFD, b)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func childFail(ce *ChildError) {
	_ = send(message{Type: msgError, Err: ce})
	os.Exit(ChildFailedCode)
}

// setupRoot executes the mount plan and pivots into the new root.
func setupRoot(cfg childConfig) *ChildError {
	// Nothing we mount may propagate back to the supervisor.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return childErr("make mounts private", "/", err)
	}
	root := cfg.Staging
	for _, s := range mountPlan(cfg, root) {
		if ce := runStep(s); ce != nil {
			return ce
		}
	}
	if err := unix.Chdir(root); err != nil {
		return childErr("chdir", root, err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// detach below then removes it, leaving only the new root.
	if err := unix.PivotRoot(".", "."); err != nil {
		return childErr("pivot_root", "/", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return childErr("detach old root", "/", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return childErr("chdir", "/", err)
	}
	return nil
}

func runStep(s mountStep) *ChildError {
	if s.Optional {
		if _, err := os.Lstat(s.Target); err != nil {
			return nil
		}
	}
	switch s.Kind {
	case stepMask:
		st, err := os.Stat(s.Target)
		if err != nil {
			return nil
		}
		if st.IsDir() {
			if err := unix.Mount("tmpfs", s.Target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0555,size=0"); err != nil {
				return childErr("mask", s.Show, err)
			}
			return nil
		}
		if err := unix.Mount(s.Source, s.Target, "", unix.MS_BIND, ""); err != nil {
			return childErr("mask", s.Show, err)
		}
	case stepBindTree:
		if s.Create {
			if ce := ensureTarget(s, s.Source); ce != nil {
				return ce
			}
		}
		return bindTree(s)
	case stepMount:
		if s.Create {
			if ce := ensureTarget(s, ""); ce != nil {
				return ce
			}
		}
		if err := unix.Mount(s.Source, s.Target, s.FSType, s.Flags, s.Data); err != nil {
			return childErr("mount "+s.FSType+" on", s.Show, err)
		}
	case stepMkdir:
		if err := unix.Mkdir(s.Target, s.Mode); err != nil && !errors.Is(err, unix.EEXIST) {
			return childErr("mkdir", s.Show, err)
		}
	case stepMknod:
		if err := unix.Mknod(s.Target, unix.S_IFCHR|s.Mode, int(s.Dev)); err != nil {
			return childErr("mknod", s.Show, err)
		}
		// mknod is subject to the umask.
		if err := unix.Chmod(s.Target, s.Mode); err != nil {
			return childErr("chmod", s.Show, err)
		}
	case stepSymlink:
		if err := unix.Symlink(s.Source, s.Target); err != nil && !errors.Is(err, unix.EEXIST) {
			return childErr("symlink", s.Show, err)
		}
	case stepBindFile:
		return bindFile(s)
	case stepDetach:
		if err := unix.Unmount(s.Target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return childErr("detach", s.Show, err)
		}
	case stepRemountRO:
		// Keep the mount's other flags: a remount drops what it does not repeat.
		if err := unix.Mount("", s.Target, "", s.Flags|unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return childErr("remount read-only", s.Show, err)
		}
	}
	return nil
}

// bindTree clones a mount tree and attaches it at the target, read-only
// all the way down when asked (mount_setattr with AT_RECURSIVE; a plain
// MS_BIND|MS_REMOUNT|MS_RDONLY would leave submounts writable).
func bindTree(s mountStep) *ChildError {
	if s.SourceFD > 2 {
		// Already a detached tree, made (and made read-only) by the parent.
		if err := unix.MoveMount(s.SourceFD, "", unix.AT_FDCWD, s.Target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return childErr("mount", s.Show, err)
		}
		return nil
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, s.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return &ChildError{Op: "mount", Path: s.Show, Msg: "kernel too old: open_tree and mount_setattr need Linux 5.12", Errno: unix.ENOSYS}
		}
		return &ChildError{Op: "mount", Path: s.Show, Msg: "source " + s.Source, Errno: errnoOf(err)}
	}
	defer unix.Close(fd)
	attr := &unix.MountAttr{Propagation: unix.MS_PRIVATE}
	if s.RO {
		attr.Attr_set = unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		return childErr("set mount attributes of", s.Show, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, s.Target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return childErr("mount", s.Show, err)
	}
	return nil
}

// childNotes are what the child stage skipped and the supervisor should
// log; they go with msgExec or msgRunning.
var childNotes []string

// bindFile binds s.Source (a detached read-only clone the parent made,
// s.SourceFD) over the file s.Show of the new root at s.Target. The target is looked up inside that root (openat2
// RESOLVE_IN_ROOT), so a symlink such as /etc/resolv.conf ->
// ../tmp/resolv.conf or -> /run/systemd/resolve/stub-resolv.conf lands in
// the container's own /tmp or /run, never in the supervisor's, and is
// created there when missing.
func bindFile(s mountStep) *ChildError {
	root, err := unix.Open(s.Target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return childErr("open new root", "/", err)
	}
	defer unix.Close(root)
	target, ce := fileInRoot(root, s.Show)
	if ce != nil {
		if s.Optional && ce.Op == "mount" && ce.Errno == unix.ENOENT {
			// A read-only root without the file: the service runs with
			// the image's own (none), and the supervisor says so.
			childNotes = append(childNotes, ce.Path+" not bound, the service runs without corral's: "+ce.Msg)
			return nil
		}
		return ce
	}
	defer unix.Close(target)
	tree := s.SourceFD
	if tree <= 2 {
		var err error
		tree, err = unix.OpenTree(unix.AT_FDCWD, s.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return &ChildError{Op: "mount", Path: s.Show, Msg: "source " + s.Source, Errno: errnoOf(err)}
		}
		defer unix.Close(tree)
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY, Propagation: unix.MS_PRIVATE}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
			return childErr("set mount attributes of", s.Show, err)
		}
	}
	if err := unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return childErr("mount", s.Show, err)
	}
	return nil
}

// maxSymlinks bounds the symlinks followed for one target, as the
// kernel's MAXSYMLINKS.
const maxSymlinks = 40

// fileInRoot returns an O_PATH fd of the file at path inside root,
// creating it (and its missing directories) when it does not exist. Each
// step is resolved with RESOLVE_IN_ROOT: ".." and absolute symlinks stop
// at root.
func fileInRoot(root int, path string) (int, *ChildError) {
	inRoot := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	rel := strings.TrimPrefix(filepath.Clean("/"+path), "/")
	fd, err := unix.Openat2(root, rel, inRoot)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, childErr("look up mount target", path, err)
	}
	missing, err := resolveMissing(root, rel)
	if err != nil {
		return -1, childErr("look up mount target", path, err)
	}
	dir, base := filepath.Split(missing)
	parent, err := mkdirAllIn(root, strings.TrimSuffix(dir, "/"))
	if err == nil {
		var f int
		f, err = unix.Openat(parent, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil || errors.Is(err, unix.EEXIST) {
			if err == nil {
				unix.Close(f)
			}
			fd, err = unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		unix.Close(parent)
	}
	if errors.Is(err, unix.EROFS) {
		return -1, &ChildError{Op: "mount", Path: path, Msg: "target /" + missing + " does not exist in the read-only root (create it in the image)", Errno: unix.ENOENT}
	}
	if err != nil {
		return -1, childErr("create mount target", "/"+missing, err)
	}
	return fd, nil
}

// resolveMissing follows rel inside root, component by component, through
// symlinks, to the first component that does not exist, and returns the
// path (relative to root, free of symlinks) that has to be created.
func resolveMissing(root int, rel string) (string, error) {
	noFollow := &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	todo := strings.Split(rel, "/")
	var done []string
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := strings.Join(append(done, c), "/")
		fd, err := unix.Openat2(root, cur, noFollow)
		if errors.Is(err, unix.ENOENT) {
			return strings.Join(append(append(done, c), todo...), "/"), nil
		}
		if err != nil {
			return "", err
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			buf := make([]byte, unix.PathMax)
			var n int
			n, err = unix.Readlinkat(fd, "", buf)
			if err == nil {
				if hops++; hops > maxSymlinks {
					err = unix.ELOOP
				}
				link := string(buf[:n])
				if strings.HasPrefix(link, "/") {
					done = nil
				}
				todo = append(strings.Split(link, "/"), todo...)
			}
		} else if err == nil {
			done = append(done, c)
		}
		unix.Close(fd)
		if err != nil {
			return "", err
		}
	}
	return "", unix.EEXIST // every component exists: openat2 raced with us
}

// mkdirAllIn makes the directories of dir (relative to root, no symlinks)
// that are missing, and returns an O_PATH fd of the last one.
func mkdirAllIn(root int, dir string) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(dir, "/") {
		if c == "" {
			continue
		}
		if err := unix.Mkdirat(fd, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return -1, err
		}
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// ensureTarget creates a missing mount target (a directory, or an empty
// file when a file is bound). In the read-only root that fails, and the
// error says what to do about it.
func ensureTarget(s mountStep, source string) *ChildError {
	if _, err := os.Lstat(s.Target); err == nil {
		return nil
	}
	isFile := false
	if source != "" {
		st, err := os.Stat(source)
		if err != nil {
			return &ChildError{Op: "mount", Path: s.Show, Msg: "source " + source, Errno: errnoOf(err)}
		}
		isFile = !st.IsDir()
	}
	var err error
	if isFile {
		var f *os.File
		f, err = os.OpenFile(s.Target, os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
		}
	} else {
		err = os.MkdirAll(s.Target, 0o755)
	}
	if errors.Is(err, unix.EROFS) {
		return &ChildError{Op: "mount", Path: s.Show, Msg: "target does not exist in the read-only root (create it in the image, or mount under /tmp or /run)", Errno: unix.ENOENT}
	}
	if err != nil {
		return childErr("create mount target", s.Show, err)
	}
	return nil
}

func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

func lookupCredentials(spec Spec) (Credentials, *ChildError) {
	if spec.User == "" && spec.Group == "" {
		return Credentials{Home: "/", Name: "root"}, nil
	}
	passwd, _ := os.Open("/etc/passwd")
	group, _ := os.Open("/etc/group")
	defer func() {
		if passwd != nil {
			passwd.Close()
		}
		if group != nil {
			group.Close()
		}
	}()
	var pr, gr = fileOrNil(passwd), fileOrNil(group)
	c, err := resolveCredentials(spec.User, spec.Group, pr, gr)
	if err != nil {
		return c, &ChildError{Op: "look up user", Path: spec.User, Msg: err.Error()}
	}
	return c, nil
}

func fileOrNil(f *os.File) fs.File {
	if f == nil {
		return nil
	}
	return f
}

// applySandbox is the last phase before exec, in this order: limits that
// need privileges, the bounding set, the user (keeping capabilities across
// the switch), the capability sets, then no_new_privs and the seccomp
// filter (which would refuse anything privileged after it).
func applySandbox(sec Security, c Credentials, change bool) *ChildError {
	if ce := applyLimits(sec); ce != nil {
		return ce
	}
	last := lastCap()
	keep := sec.keptCaps(last)
	if ce := dropBounding(keep, last); ce != nil {
		return ce
	}
	root := c.UID == 0
	if change && !root {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return childErr("keep capabilities across setuid", "", err)
		}
	}
	if ce := setCredentials(c, change); ce != nil {
		return ce
	}
	if root {
		if ce := setCaps(keep, false); ce != nil {
			return ce
		}
	} else {
		amb, _ := CapMask(sec.Ambient)
		if ce := setCaps(amb&keep, true); ce != nil {
			return ce
		}
	}
	return applyFilters(sec)
}

func setCredentials(c Credentials, change bool) *ChildError {
	if !change {
		return nil
	}
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	// syscall's versions apply to every thread of the process.
	if err := syscall.Setgroups(groups); err != nil {
		return childErr("setgroups", "", err)
	}
	if err := syscall.Setresgid(int(c.GID), int(c.GID), int(c.GID)); err != nil {
		return childErr("setgid", "", err)
	}
	if err := syscall.Setresuid(int(c.UID), int(c.UID), int(c.UID)); err != nil {
		return childErr("setuid", "", err)
	}
	return nil
}

// withUserEnv adds HOME and USER for a service with a user, unless its
// file sets them.
func withUserEnv(env []string, hasUser bool, c Credentials) []string {
	if !hasUser {
		return env
	}
	has := func(k string) bool {
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				return true
			}
		}
		return false
	}
	out := append([]string(nil), env...)
	if !has("HOME") {
		out = append(out, "HOME="+c.Home)
	}
	if !has("USER") {
		out = append(out, "USER="+c.Name)
	}
	return out
}

// forwarded are the signals an init-mode child stage passes to the service.
var forwarded = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1,
	unix.SIGUSR2, unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT, unix.SIGABRT,
}

// runInit is the tiny in-container init: fork the service, forward
// signals to it, reap every child, and when the service exits report its
// real wait status and exit.
func runInit(spec Spec, env []string) {
	debug.SetGCPercent(100) // it stays: GOGC=off was for the short-lived stage
	sigc := make(chan os.Signal, 64)
	signal.Notify(sigc, append([]os.Signal{unix.SIGCHLD}, forwarded...)...)
	cwd, _ := os.Getwd()
	pid, err := syscall.ForkExec(spec.Args[0], spec.Args, &syscall.ProcAttr{
		Dir:   cwd,
		Env:   env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		childFail(childErr("exec", filepath.Clean(spec.Args[0]), err))
	}
	if err := send(message{Type: msgRunning, Pid: pid, Notes: childNotes}); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		os.Exit(ChildFailedCode)
	}
	reloads := make(chan []string, 1)
	go readReloads(reloads)
	reloadPid := 0
	for {
		select {
		case argv := <-reloads:
			if reloadPid != 0 {
				_ = send(message{Type: msgDone, Err: &ChildError{Op: "reload", Msg: "a reload is still running"}})
				continue
			}
			renv := append(slices.Clone(env), fmt.Sprintf("MAINPID=%d", pid))
			rp, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Dir: cwd, Env: renv, Files: []uintptr{0, 1, 2}})
			if err != nil {
				_ = send(message{Type: msgDone, Err: childErr("exec", argv[0], err)})
				continue
			}
			reloadPid = rp
			_ = send(message{Type: msgForked, Pid: rp})
		case sig := <-sigc:
			if sig != unix.SIGCHLD {
				_ = unix.Kill(pid, sig.(unix.Signal))
				continue
			}
			for {
				var ws unix.WaitStatus
				p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if errors.Is(err, unix.EINTR) {
					continue
				}
				if err != nil || p <= 0 {
					break
				}
				if p == reloadPid {
					reloadPid = 0
					_ = send(message{Type: msgDone, Pid: p, Status: uint32(ws)})
				}
				if p == pid {
					_ = send(message{Type: msgExit, Status: uint32(ws)})
					if ws.Signaled() {
						os.Exit(128 + int(ws.Signal()))
					}
					os.Exit(ws.ExitStatus())
				}
			}
		}
	}
}

// readReloads reads reload commands from the parent until it goes away.
func readReloads(out chan<- []string) {
	buf := make([]byte, maxMessage)
	for {
		n, err := unix.Read(handshakeFD, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		var m message
		if json.Unmarshal(buf[:n], &m) == nil && m.Type == msgReload && len(m.Argv) > 0 {
			out <- m.Argv
		}
	}
}
