package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// This file is the host side: the tools the build and the boots need, the
// one-line-per-step log, and small file helpers.

// hostTool is a program the build or the boots run, and the Debian package
// that has it.
type hostTool struct{ Bin, Pkg string }

var hostTools = []hostTool{
	{"qemu-system-aarch64", "qemu-system-arm"},
	{"mkfs.ext4", "e2fsprogs"},
	{"dpkg-deb", "dpkg"},
	{"apt-get", "apt"},
	{"apt-cache", "apt"},
}

// ensureTools installs the packages of missing tools with the host's
// apt-get (CI starts from a fresh Debian 12 machine, as root).
func ensureTools(ctx context.Context, log *stepLog) error {
	var pkgs, bins []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t.Bin); err != nil {
			bins = append(bins, t.Bin)
			if !contains(pkgs, t.Pkg) {
				pkgs = append(pkgs, t.Pkg)
			}
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing %s; install them: sudo apt-get install --no-install-recommends %s",
			strings.Join(bins, ", "), strings.Join(pkgs, " "))
	}
	t := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"update", "-qq"},
		append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...),
	} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(string(out), 20))
		}
	}
	log.step(t, "host: installed %s", strings.Join(pkgs, " "))
	return nil
}

// stepLog prints one line per step, with how long it took.
type stepLog struct {
	mu  sync.Mutex
	out io.Writer
}

func (l *stepLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, format+"\n", args...)
}

// step reports a step that started at t.
func (l *stepLog) step(t time.Time, format string, args ...any) {
	l.printf("qemu: %-72s %6.1fs", fmt.Sprintf(format, args...), time.Since(t).Seconds())
}

// note reports something that took no time worth showing.
func (l *stepLog) note(format string, args ...any) {
	l.printf("qemu: %s", fmt.Sprintf(format, args...))
}

// repoRoot finds the corral module's root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module github.com/corral-init/corral\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the corral repository (no go.mod for github.com/corral-init/corral)")
		}
		dir = parent
	}
}

// relBase is what rel shortens paths against (the repository root).
var relBase string

// rel shortens a path for messages.
func rel(p string) string {
	if relBase != "" {
		if r, err := filepath.Rel(relBase, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return p
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm) // not masked by the umask
}

func writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		return err
	}
	return os.Chmod(path, perm)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}
