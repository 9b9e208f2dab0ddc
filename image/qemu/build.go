package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// layout is where everything lives, under the repository.
type layout struct {
	root  string // the repository
	out   string // build/qemu
	guest string // image/qemu/guest
}

func newLayout(root string) layout {
	return layout{root: root, out: filepath.Join(root, "build", "qemu"), guest: filepath.Join(root, "image", "qemu", "guest")}
}

func (l layout) path(name string) string { return filepath.Join(l.out, name) }

// The build's outputs, in build/qemu.
const (
	outVmlinuz   = "vmlinuz"
	outDTB       = "bcm2837-rpi-3-b.dtb"
	outInitramfs = "initramfs.cpio.gz"
	outStage     = "stage.cpio.gz"
	outRootExt4  = "root.ext4"
	outManifest  = "image.json"
	outRootfs    = "rootfs"  // the image tree
	outStagefs   = "stagefs" // the stage initramfs tree
	// The watchdog-bootloop boot's data disk, made fresh by each test.
	outBootloopData = "bootloop-data.ext4"
)

// brokenService is the guest's deliberately broken service file: the one
// problem `corral check` must find.
const brokenService = "broken"

// manifest describes a built image (build/qemu/image.json).
type manifest struct {
	KernelPackage string    `json:"kernel_package"`
	KernelVersion string    `json:"kernel_version"`
	Release       string    `json:"release"`
	Modules       []string  `json:"modules"`
	StageModules  []string  `json:"stage_modules"`
	Services      []string  `json:"services"`
	Built         time.Time `json:"built"`
}

func readManifest(l layout) (*manifest, error) {
	b, err := os.ReadFile(l.path(outManifest))
	if err != nil {
		return nil, err
	}
	var m manifest
	return &m, json.Unmarshal(b, &m)
}

// guestGlobal is what the builder reads from a corral.toml.
type guestGlobal struct {
	Hostname string   `toml:"hostname"`
	Modules  []string `toml:"modules"`
}

func readGuestGlobal(path string) (guestGlobal, error) {
	var g guestGlobal
	if _, err := toml.DecodeFile(path, &g); err != nil {
		return g, fmt.Errorf("read %s: %w", path, err)
	}
	return g, nil
}

type buildOptions struct {
	refresh bool // refresh the apt lists
}

// build makes everything in build/qemu.
func build(ctx context.Context, l layout, opts buildOptions, log *stepLog) (*manifest, error) {
	start := time.Now()
	if err := os.MkdirAll(l.out, 0o755); err != nil {
		return nil, err
	}
	if err := ensureTools(ctx, log); err != nil {
		return nil, err
	}
	mainCfg, err := readGuestGlobal(filepath.Join(l.guest, "corral.toml"))
	if err != nil {
		return nil, err
	}
	// One image for every boot: its modules are those of /etc/corral and
	// of the boots' own configurations.
	modules := mainCfg.Modules
	for _, name := range extraConfigs {
		g, err := readGuestGlobal(filepath.Join(l.guest, name, "corral.toml"))
		if err != nil {
			return nil, err
		}
		modules = append(modules, g.Modules...)
	}
	stageCfg, err := readGuestGlobal(filepath.Join(l.guest, "stage.toml"))
	if err != nil {
		return nil, err
	}

	// The Go builds and the Debian packages are independent: in parallel.
	type goResult struct {
		b   *goBinaries
		err error
	}
	goc := make(chan goResult, 1)
	go func() {
		b, err := buildGo(ctx, l.root, l.out, log)
		goc <- goResult{b, err}
	}()
	a := &apt{dir: filepath.Join(l.out, "cache", "apt"), log: log}
	deb, debErr := fetchDebian(ctx, a, opts.refresh)
	gr := <-goc
	if err := errors.Join(debErr, gr.err); err != nil {
		return nil, err
	}

	t := time.Now()
	ix, err := indexModules(deb.modulesDir())
	if err != nil {
		return nil, err
	}
	in := &imageInputs{Root: l.root, Guest: l.guest, Deb: deb, Bins: gr.b, Modules: ix, Hostname: mainCfg.Hostname}
	var builtin, stageBuiltin []string
	if in.Main, builtin, err = ix.closure(modules); err != nil {
		return nil, fmt.Errorf("modules of guest/corral.toml and guest/{%s}/corral.toml: %w", strings.Join(extraConfigs, ","), err)
	}
	if in.Stage, stageBuiltin, err = ix.closure(stageCfg.Modules); err != nil {
		return nil, fmt.Errorf("modules of guest/stage.toml: %w", err)
	}
	note := ""
	if b := append(builtin, stageBuiltin...); len(b) > 0 {
		note = "; built in: " + strings.Join(b, " ")
	}
	log.step(t, "modules: %d of %d in %s: %s; stage: %s%s", len(in.Main), len(ix.mods), deb.Release,
		strings.Join(in.Main, " "), strings.Join(in.Stage, " "), note)

	t = time.Now()
	tree, stage := l.path(outRootfs), l.path(outStagefs)
	if err := assembleMain(tree, in); err != nil {
		return nil, fmt.Errorf("assemble %s: %w", tree, err)
	}
	if err := assembleStage(stage, in); err != nil {
		return nil, fmt.Errorf("assemble %s: %w", stage, err)
	}
	log.step(t, "tree: %s (%s), %s (%s)", rel(tree), mib(dirSize(tree)), rel(stage), mib(dirSize(stage)))

	t = time.Now()
	var extra []string
	for _, name := range extraConfigs {
		extra = append(extra, filepath.Join(tree, imgEtcFor(name)))
	}
	if err := checkConfigs(ctx, gr.b.HostCorral, filepath.Join(tree, imgEtcCorral), filepath.Join(stage, imgEtcCorral), extra); err != nil {
		return nil, err
	}
	log.step(t, "check: corral check passes on the guest config (only %s.toml is broken), the stage's and %s", brokenService, strings.Join(extraConfigs, ", "))

	t = time.Now()
	n1, err := writeTreeCpioFile(l.path(outInitramfs), tree, []cpioNode{consoleNode})
	if err != nil {
		return nil, err
	}
	n2, err := writeTreeCpioFile(l.path(outStage), stage, []cpioNode{consoleNode})
	if err != nil {
		return nil, err
	}
	log.step(t, "cpio: %s (%s), %s (%s)", rel(l.path(outInitramfs)), mib(n1), rel(l.path(outStage)), mib(n2))

	t = time.Now()
	size, err := mkfsExt4(ctx, tree, l.path(outRootExt4))
	if err != nil {
		return nil, err
	}
	log.step(t, "ext4: %s (%d MiB, read-only root for the disk variant)", rel(l.path(outRootExt4)), size>>20)

	if err := copyFile(deb.vmlinuz(), l.path(outVmlinuz), 0o644); err != nil {
		return nil, err
	}
	if err := copyFile(deb.pi3DTB(), l.path(outDTB), 0o644); err != nil {
		return nil, err
	}
	m := &manifest{
		KernelPackage: deb.KernelPkg, KernelVersion: deb.KernelVersion, Release: deb.Release,
		Modules: in.Main, StageModules: in.Stage, Services: serviceNames(filepath.Join(tree, imgEtcCorral)),
		Built: time.Now().UTC(),
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(l.path(outManifest), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	log.step(start, "build: done: %s %s, %s and the Pi 3 DTB in %s", deb.KernelPkg, deb.KernelVersion, outVmlinuz, rel(l.out))
	return m, nil
}

// checkConfigs runs the host corral's `corral check` on the guest's
// configuration: without the broken file it must pass; with it, the
// broken file must be the only problem. The stage's and the extra
// configurations must pass.
func checkConfigs(ctx context.Context, corral, etc, stageEtc string, extra []string) error {
	tmp, err := os.MkdirTemp("", "corral-qemu-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := copyDir(etc, tmp); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(tmp, "services", brokenService+".toml")); err != nil {
		return fmt.Errorf("the guest has no services/%s.toml: %w", brokenService, err)
	}
	check := func(dir string) (string, int, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, corral, "check", dir).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode(), nil
		}
		return string(out), 0, err
	}
	out, code, err := check(tmp)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("corral check of the guest configuration (without %s.toml) failed:\n%s", brokenService, out)
	}
	out, code, err = check(etc)
	if err != nil {
		return err
	}
	if err := onlyBrokenProblems(out, code); err != nil {
		return err
	}
	out, code, err = check(stageEtc)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("corral check of the stage's corral.toml (guest/stage.toml) failed:\n%s", out)
	}
	for _, dir := range extra {
		out, code, err = check(dir)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("corral check of %s failed:\n%s", rel(dir), out)
		}
	}
	return nil
}

// onlyBrokenProblems checks `corral check` output on the full guest
// configuration: it fails, and every problem is in the broken file.
func onlyBrokenProblems(out string, code int) error {
	if code == 0 {
		return fmt.Errorf("corral check found no problem in services/%s.toml, which is meant to be broken:\n%s", brokenService, out)
	}
	var bad []string
	disabled := false
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case strings.HasPrefix(l, "disabled: "+brokenService+":"):
			disabled = true
		case strings.HasPrefix(l, "disabled: "):
			bad = append(bad, l)
		case strings.Contains(l, " ok, ") && strings.Contains(l, " disabled, "):
			// the summary line
		case !strings.Contains(l, brokenService+".toml"):
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 || !disabled {
		return fmt.Errorf("corral check on the guest configuration: expected problems in %s.toml only:\n%s", brokenService, out)
	}
	return nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, r), 0o755)
		}
		return copyFile(p, filepath.Join(dst, r), 0o644)
	})
}

// mkfsExt4 makes the disk variant's root file system from the tree, sized
// to fit with some room, without root privileges or mounts.
func mkfsExt4(ctx context.Context, tree, img string) (int64, error) {
	size := dirSize(tree)*5/4 + 32<<20
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	tmp := img + ".tmp"
	os.Remove(tmp)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "corral-root", "-d", tree, tmp, fmt.Sprintf("%dM", size>>20))
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("mkfs.ext4 -d %s: %w\n%s", tree, err, out)
	}
	return size, os.Rename(tmp, img)
}

// needsBuild says whether build/qemu is older than its inputs (the Go
// sources, etc-examples, the guest files) or missing.
func needsBuild(l layout) (bool, string) {
	var oldest time.Time
	for _, o := range []string{outVmlinuz, outDTB, outInitramfs, outStage, outRootExt4, outManifest} {
		st, err := os.Stat(l.path(o))
		if err != nil {
			return true, o + " is missing"
		}
		if oldest.IsZero() || st.ModTime().Before(oldest) {
			oldest = st.ModTime()
		}
	}
	newer := ""
	skip := filepath.Join(l.root, "build")
	_ = filepath.WalkDir(l.root, func(p string, d os.DirEntry, err error) error {
		if newer != "" {
			return filepath.SkipAll
		}
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p == skip || strings.HasPrefix(d.Name(), ".") && p != l.root {
				return filepath.SkipDir
			}
			return nil
		}
		if st, err := d.Info(); err == nil && st.ModTime().After(oldest) &&
			(strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".toml") || strings.HasPrefix(p, l.guest) || strings.HasSuffix(p, "go.mod")) {
			newer = p
		}
		return nil
	})
	if newer != "" {
		return true, rel(newer) + " changed"
	}
	return false, ""
}
