package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// This file fetches Debian bookworm arm64 packages with apt, in a private
// state directory under build/qemu/cache/apt: the host's apt lists, cache
// and dpkg status are never read or written, only its sources
// (/etc/apt/sources.list{,.d}) are read. Downloads and extracted trees are
// cached by package name and version; only the package lists are
// refreshed (at most once a day, or with -refresh, or when a download
// fails because Debian has dropped the version the lists name).

// listsMaxAge is how old the private package lists may get before build
// refreshes them.
const listsMaxAge = 24 * time.Hour

// apt runs apt-get and apt-cache for arm64 in a private state directory.
type apt struct {
	dir string // build/qemu/cache/apt
	log *stepLog
}

func (a *apt) opts() []string {
	return []string{
		"-o", "APT::Architecture=arm64",
		"-o", "APT::Architectures=arm64",
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"-o", "Dir::State::status=" + filepath.Join(a.dir, "status"),
		"-o", "APT::Sandbox::User=root",
		"-q",
	}
}

func (a *apt) run(ctx context.Context, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, append(a.opts(), args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, tail(string(out), 20))
	}
	return string(out), nil
}

func (a *apt) prepare() error {
	for _, d := range []string{"lists/partial", "cache/archives/partial", "debs", "x"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return err
		}
	}
	st := filepath.Join(a.dir, "status")
	if _, err := os.Stat(st); errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(st, nil, 0o644)
	}
	return nil
}

// listsAge is how long ago the private lists were refreshed (a large
// value if never).
func (a *apt) listsAge() time.Duration {
	st, err := os.Stat(filepath.Join(a.dir, "lists.stamp"))
	if err != nil {
		return 1 << 62
	}
	return time.Since(st.ModTime())
}

// update refreshes the private package lists.
func (a *apt) update(ctx context.Context) error {
	t := time.Now()
	if _, err := a.run(ctx, "apt-get", "update"); err != nil {
		return err
	}
	a.log.step(t, "apt: refreshed the arm64 package lists (private state in %s)", rel(a.dir))
	return os.WriteFile(filepath.Join(a.dir, "lists.stamp"), nil, 0o644)
}

var dependsRe = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*-arm64)\s*$`)

// kernelPackage resolves the linux-image-arm64 metapackage to the concrete
// package it depends on today, e.g. linux-image-6.1.0-57-arm64.
func (a *apt) kernelPackage(ctx context.Context) (string, error) {
	out, err := a.run(ctx, "apt-cache", "depends", "linux-image-arm64")
	if err != nil {
		return "", err
	}
	m := dependsRe.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends linux-image-arm64 names no linux-image-*-arm64 package:\n%s", out)
	}
	return m[1], nil
}

var versionRe = regexp.MustCompile(`(?m)^Version:\s*(\S+)\s*$`)

// version is the candidate version of pkg.
func (a *apt) version(ctx context.Context, pkg string) (string, error) {
	out, err := a.run(ctx, "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", err
	}
	m := versionRe.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache show %s: no Version", pkg)
	}
	return m[1], nil
}

// extracted returns the directory pkg (at version) is extracted in,
// downloading and extracting it unless that is cached.
func (a *apt) extracted(ctx context.Context, pkg, version string) (string, error) {
	key := pkg + "_" + strings.NewReplacer(":", "%3a", "/", "_").Replace(version)
	dir := filepath.Join(a.dir, "x", key)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		a.log.note("apt: %s %s (cached)", pkg, version)
		return dir, nil
	}
	deb := filepath.Join(a.dir, "debs", key+".deb")
	if _, err := os.Stat(deb); err != nil {
		t := time.Now()
		tmp, err := os.MkdirTemp(filepath.Join(a.dir, "debs"), "dl-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(tmp)
		cmd := exec.CommandContext(ctx, "apt-get", append(a.opts(), "download", pkg+"="+version)...)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get download %s=%s: %w\n%s", pkg, version, err, tail(string(out), 20))
		}
		got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
		if len(got) != 1 {
			return "", fmt.Errorf("apt-get download %s: expected one .deb, got %d", pkg, len(got))
		}
		if err := os.Rename(got[0], deb); err != nil {
			return "", err
		}
		st, _ := os.Stat(deb)
		a.log.step(t, "apt: downloaded %s %s (%s)", pkg, version, mib(st.Size()))
	}
	t := time.Now()
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	xctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(xctx, "dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("dpkg-deb -x %s: %w\n%s", deb, err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	a.log.step(t, "apt: extracted %s %s (%s)", pkg, version, mib(dirSize(dir)))
	return dir, nil
}

// debianInputs are the extracted packages an image is made of.
type debianInputs struct {
	KernelPkg, KernelVersion string
	Kernel                   string // extracted linux-image tree
	Release                  string // uname -r: the lib/modules/<release> name
	Busybox                  string // extracted busybox-static tree
}

// fetchDebian resolves, downloads and extracts the kernel and busybox.
// Without network it falls back to the newest kernel already extracted.
func fetchDebian(ctx context.Context, a *apt, refresh bool) (*debianInputs, error) {
	if err := a.prepare(); err != nil {
		return nil, err
	}
	if refresh || a.listsAge() > listsMaxAge {
		if err := a.update(ctx); err != nil {
			if in, ferr := cachedDebian(a); ferr == nil {
				a.log.note("apt: cannot refresh the package lists, using the cached %s (%v)", in.KernelPkg, firstLine(err))
				return in, nil
			}
			return nil, err
		}
	}
	in, err := resolveDebian(ctx, a)
	if err != nil && !refresh {
		// The lists may name a version Debian has since removed.
		a.log.note("apt: %v; refreshing the lists and retrying", firstLine(err))
		if uerr := a.update(ctx); uerr != nil {
			return nil, errors.Join(err, uerr)
		}
		in, err = resolveDebian(ctx, a)
	}
	return in, err
}

func resolveDebian(ctx context.Context, a *apt) (*debianInputs, error) {
	in := &debianInputs{}
	var err error
	if in.KernelPkg, err = a.kernelPackage(ctx); err != nil {
		return nil, err
	}
	if in.KernelVersion, err = a.version(ctx, in.KernelPkg); err != nil {
		return nil, err
	}
	if in.Kernel, err = a.extracted(ctx, in.KernelPkg, in.KernelVersion); err != nil {
		return nil, err
	}
	bbv, err := a.version(ctx, "busybox-static")
	if err != nil {
		return nil, err
	}
	if in.Busybox, err = a.extracted(ctx, "busybox-static", bbv); err != nil {
		return nil, err
	}
	return in, in.findRelease()
}

// cachedDebian picks the newest extracted kernel and busybox, for builds
// without network.
func cachedDebian(a *apt) (*debianInputs, error) {
	newest := func(glob string) string {
		ms, _ := filepath.Glob(filepath.Join(a.dir, "x", glob))
		var best string
		var bt time.Time
		for _, m := range ms {
			if st, err := os.Stat(filepath.Join(m, ".complete")); err == nil && st.ModTime().After(bt) {
				best, bt = m, st.ModTime()
			}
		}
		return best
	}
	in := &debianInputs{Kernel: newest("linux-image-*-arm64_*"), Busybox: newest("busybox-static_*")}
	if in.Kernel == "" || in.Busybox == "" {
		return nil, errors.New("no cached kernel and busybox")
	}
	in.KernelPkg, in.KernelVersion, _ = strings.Cut(filepath.Base(in.Kernel), "_")
	return in, in.findRelease()
}

func (in *debianInputs) findRelease() error {
	ms, _ := filepath.Glob(filepath.Join(in.Kernel, "lib/modules/*"))
	if len(ms) != 1 {
		return fmt.Errorf("%s: expected one lib/modules/<release>, found %d", in.Kernel, len(ms))
	}
	in.Release = filepath.Base(ms[0])
	return nil
}

func (in *debianInputs) modulesDir() string {
	return filepath.Join(in.Kernel, "lib/modules", in.Release)
}

func (in *debianInputs) vmlinuz() string {
	return filepath.Join(in.Kernel, "boot", "vmlinuz-"+in.Release)
}

func (in *debianInputs) pi3DTB() string {
	return filepath.Join(in.Kernel, "usr/lib/linux-image-"+in.Release, "broadcom/bcm2837-rpi-3-b.dtb")
}

func (in *debianInputs) busybox() string { return filepath.Join(in.Busybox, "bin/busybox") }
