package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// This file lays out the image's root file system as a directory on the
// build machine (build/qemu/rootfs), from which both the initramfs and
// root.ext4 are made, and the stage initramfs's tree (build/qemu/stagefs).

// busyboxApplets get a symlink to /bin/busybox in the image. The root
// integration tests exec /bin/sleep and find nsenter, ip and ping in PATH;
// the guest scripts use the rest.
var busyboxApplets = []string{
	// asked for by name
	"sh", "ls", "cat", "mount", "umount", "ip", "nsenter", "ping", "sleep", "wget",
	"ps", "kill", "dmesg", "grep", "seq",
	// used by the guest scripts, or handy on the console
	"[", "awk", "basename", "chmod", "cp", "cut", "date", "dd", "df", "dirname", "du",
	"echo", "env", "false", "find", "free", "halt", "head", "hostname", "httpd", "id",
	"insmod", "less", "ln", "lsmod", "mkdir", "mknod", "modinfo", "mv", "nc", "nproc", "pidof",
	"poweroff", "printf", "readlink", "reboot", "rm", "rmmod", "sed", "setsid", "sort",
	"stat", "switch_root", "sync", "tail", "tee", "test", "timeout", "top", "touch",
	"tr", "true", "uname", "uniq", "unshare", "uptime", "vi", "watch", "wc", "xargs",
}

// Paths inside the image.
const (
	imgCorral    = "usr/bin/corral"
	imgLibexec   = "usr/libexec/corral"
	imgTests     = "usr/libexec/corral/tests"
	imgCheck     = "usr/libexec/corral/qemu-check.sh"
	imgWDCheck   = "usr/libexec/corral/watchdog-check.sh"
	imgLoopCheck = "usr/libexec/corral/bootloop-check.sh"
	imgSelftest  = "selftest"
	imgShim      = "tmpfs-root"
	imgEtcCorral = "etc/corral"
)

// extraConfigs are the guest configurations of the boots that need their
// own instead of /etc/corral: guest/NAME/ (a corral.toml and services/)
// is installed as /etc/corral-NAME, which the boot selects with --config
// on the kernel command line. Their modules are in the image too.
var extraConfigs = []string{bootWatchdogHealthy, bootWatchdogWedged, bootWatchdogBootloop}

// imgEtcFor is where the configuration of guest/NAME/ is in the image.
func imgEtcFor(name string) string { return "etc/corral-" + name }

// consoleNode is /dev/console, which the kernel opens for init.
var consoleNode = cpioNode{Name: "dev/console", Perm: 0o600, Major: 5, Minor: 1}

// imageInputs is everything the image trees are made of.
type imageInputs struct {
	Root     string // the repository
	Guest    string // image/qemu/guest
	Deb      *debianInputs
	Bins     *goBinaries
	Modules  *modIndex
	Main     []string // modules of the main image, in load order
	Stage    []string // modules of the stage initramfs, in load order
	Hostname string
}

// skeleton creates the directories every root needs: the mount points
// PID 1 mounts on (the ext4 root is read-only, so they must exist) and
// /init and /sbin/init pointing at corral.
func skeleton(dir string) error {
	for _, d := range []struct {
		path string
		perm fs.FileMode
	}{
		{"bin", 0o755}, {"sbin", 0o755}, {"usr/bin", 0o755}, {"usr/sbin", 0o755},
		{"etc", 0o755}, {"lib/modules", 0o755}, {"dev", 0o755}, {"proc", 0o555},
		{"sys", 0o555}, {"run", 0o755}, {"tmp", fs.ModeSticky | 0o777}, {"root", 0o700},
		{"mnt", 0o755}, {"var", 0o755}, {"var/tmp", fs.ModeSticky | 0o777}, {"data", 0o755},
	} {
		p := filepath.Join(dir, d.path)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, d.perm); err != nil {
			return err
		}
	}
	// The kernel runs /init from an initramfs; everything else runs
	// /sbin/init.
	if err := os.Symlink("usr/bin/corral", filepath.Join(dir, "init")); err != nil {
		return err
	}
	return os.Symlink("../usr/bin/corral", filepath.Join(dir, "sbin/init"))
}

// assembleMain builds the full image tree in dir.
func assembleMain(dir string, in *imageInputs) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := skeleton(dir); err != nil {
		return err
	}
	type cp struct {
		src, dst string
		perm     fs.FileMode
	}
	files := []cp{
		{in.Bins.Corral, imgCorral, 0o755},
		{in.Bins.Hello, imgLibexec + "/hello", 0o755},
		{in.Bins.Payload, imgLibexec + "/corral-payload", 0o755},
		{filepath.Join(in.Guest, "qemu-check.sh"), imgCheck, 0o755},
		{filepath.Join(in.Guest, "watchdog-check.sh"), imgWDCheck, 0o755},
		{filepath.Join(in.Guest, "bootloop-check.sh"), imgLoopCheck, 0o755},
		{filepath.Join(in.Guest, "selftest"), imgSelftest, 0o755},
		{filepath.Join(in.Guest, imgShim), imgShim, 0o755},
		{in.Deb.busybox(), "bin/busybox", 0o755},
	}
	for _, t := range in.Bins.Tests {
		files = append(files, cp{t, imgTests + "/" + filepath.Base(t), 0o755})
	}
	for _, f := range files {
		if err := copyFile(f.src, filepath.Join(dir, f.dst), f.perm); err != nil {
			return err
		}
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	if err := installEtcCorral(filepath.Join(dir, imgEtcCorral), in); err != nil {
		return err
	}
	for _, name := range extraConfigs {
		if err := copyDir(filepath.Join(in.Guest, name), filepath.Join(dir, imgEtcFor(name))); err != nil {
			return fmt.Errorf("install guest/%s: %w", name, err)
		}
	}
	if err := writeEtc(dir, in.Hostname); err != nil {
		return err
	}
	mods := filepath.Join(dir, "lib/modules", in.Deb.Release)
	return in.Modules.installModules(in.Deb.modulesDir(), mods, in.Main)
}

// installEtcCorral writes /etc/corral: etc-examples, with the guest's
// corral.toml instead of the example's, plus the guest-only services.
func installEtcCorral(dst string, in *imageInputs) error {
	src := filepath.Join(in.Root, "etc-examples")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if r == "corral.toml" {
			return nil
		}
		return copyFile(p, filepath.Join(dst, r), 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy etc-examples: %w", err)
	}
	if err := copyFile(filepath.Join(in.Guest, "corral.toml"), filepath.Join(dst, "corral.toml"), 0o644); err != nil {
		return err
	}
	guestSvcs, _ := filepath.Glob(filepath.Join(in.Guest, "services", "*.toml"))
	for _, s := range guestSvcs {
		if _, err := os.Stat(filepath.Join(dst, "services", filepath.Base(s))); err == nil {
			return fmt.Errorf("guest service %s would replace the example's", filepath.Base(s))
		}
		if err := copyFile(s, filepath.Join(dst, "services", filepath.Base(s)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeEtc writes the few files of /etc that programs look for: the
// hostname, root and nobody for user lookups, hosts and resolv.conf for
// corral to bind the services' own over, and /etc/mtab for busybox's
// mount and umount.
func writeEtc(dir, hostname string) error {
	for name, body := range map[string]string{
		"etc/hostname": hostname + "\n",
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
		"etc/hosts":    "127.0.0.1\tlocalhost\n127.0.1.1\t" + hostname + "\n",
		// Empty: corral binds each service's own over it (a read-only root
		// has no place to create one).
		"etc/resolv.conf": "",
		"etc/profile":     "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='\\h:\\w# '\n",
	} {
		if err := writeFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return os.Symlink("/proc/self/mounts", filepath.Join(dir, "etc/mtab"))
}

// assembleStage builds the stage initramfs tree: corral, the modules that
// reach the disk, and a corral.toml whose [boot] switches to it.
func assembleStage(dir string, in *imageInputs) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := skeleton(dir); err != nil {
		return err
	}
	if err := copyFile(in.Bins.Corral, filepath.Join(dir, imgCorral), 0o755); err != nil {
		return err
	}
	etc := filepath.Join(dir, imgEtcCorral)
	if err := os.MkdirAll(filepath.Join(etc, "services"), 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(in.Guest, "stage.toml"), filepath.Join(etc, "corral.toml"), 0o644); err != nil {
		return err
	}
	mods := filepath.Join(dir, "lib/modules", in.Deb.Release)
	return in.Modules.installModules(in.Deb.modulesDir(), mods, in.Stage)
}

// serviceNames lists the services of an /etc/corral tree, sorted.
func serviceNames(etc string) []string {
	ms, _ := filepath.Glob(filepath.Join(etc, "services", "*.toml"))
	var out []string
	for _, m := range ms {
		out = append(out, strings.TrimSuffix(filepath.Base(m), ".toml"))
	}
	sort.Strings(out)
	return out
}
