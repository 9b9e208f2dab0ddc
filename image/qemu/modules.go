package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Debian's kernel package ships its modules as plain .ko files and no
// modules.dep (depmod makes it at install time, and there is no depmod on
// the build machine). Each module names its own dependencies in its
// .modinfo section ("depends=jbd2,mbcache,crc16"), and soft dependencies
// ("softdep=pre: crypto-crc32c") by alias. This file reads those, closes
// the set of modules an image needs over them, and writes the modules.dep
// the image gets.

// module is one .ko file of the kernel package.
type module struct {
	Name    string   // normalized: "-" becomes "_"
	Path    string   // relative to lib/modules/<release>, e.g. kernel/net/bridge/bridge.ko
	Depends []string // hard dependencies, normalized names
	SoftPre []string // softdep pre: names or aliases, as written
	Aliases []string // exact (wildcard-free) aliases
}

// modName normalizes a module or file name: the kernel treats "-" and "_"
// in module names alike.
func modName(s string) string {
	s = path.Base(s)
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// parseModinfo reads the NUL-separated key=value strings of a .modinfo
// section.
func parseModinfo(b []byte) (depends, softPre, aliases []string) {
	for _, kv := range bytes.Split(b, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					depends = append(depends, modName(d))
				}
			}
		case "softdep":
			softPre = append(softPre, softdepPre(v)...)
		case "alias":
			if !strings.ContainsAny(v, "*?[") {
				aliases = append(aliases, v)
			}
		}
	}
	return depends, softPre, aliases
}

// softdepPre returns the "pre:" names of a softdep value such as
// "pre: crc32c post: foo".
func softdepPre(v string) []string {
	var out []string
	pre := false
	for _, w := range strings.Fields(v) {
		switch w {
		case "pre:":
			pre = true
		case "post:":
			pre = false
		default:
			if pre {
				out = append(out, w)
			}
		}
	}
	return out
}

// readModule reads one .ko file's .modinfo with debug/elf (the module is
// an arm64 ELF relocatable; the host's architecture does not matter).
func readModule(file, rel string) (*module, error) {
	f, err := elf.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", file, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("read module %s: no .modinfo section", file)
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read module %s: .modinfo: %w", file, err)
	}
	m := &module{Name: modName(rel), Path: filepath.ToSlash(rel)}
	m.Depends, m.SoftPre, m.Aliases = parseModinfo(b)
	return m, nil
}

// modIndex is every module of a kernel, by name, and the exact aliases.
type modIndex struct {
	mods    map[string]*module
	alias   map[string]string // alias -> module name
	builtin map[string]bool   // modules.builtin: compiled into the kernel
}

// newModIndex builds an index from already-read modules (and tests).
func newModIndex(mods []*module, builtin []string) *modIndex {
	ix := &modIndex{mods: map[string]*module{}, alias: map[string]string{}, builtin: map[string]bool{}}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Name < mods[j].Name })
	for _, m := range mods {
		ix.mods[m.Name] = m
		for _, a := range m.Aliases {
			if _, dup := ix.alias[a]; !dup {
				ix.alias[a] = m.Name
			}
		}
	}
	for _, b := range builtin {
		ix.builtin[modName(b)] = true
	}
	return ix
}

// indexModules reads every .ko under dir (lib/modules/<release>) and its
// modules.builtin.
func indexModules(dir string) (*modIndex, error) {
	var mods []*module
	var compressed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case strings.HasSuffix(p, ".ko"):
			m, err := readModule(p, rel)
			if err != nil {
				return err
			}
			mods = append(mods, m)
		case strings.Contains(d.Name(), ".ko."):
			compressed = append(compressed, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules in %s: %w", dir, err)
	}
	if len(compressed) > 0 {
		return nil, fmt.Errorf("index modules in %s: %d compressed modules (e.g. %s); only plain .ko files are supported", dir, len(compressed), compressed[0])
	}
	var builtin []string
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				builtin = append(builtin, l)
			}
		}
	}
	return newModIndex(mods, builtin), nil
}

// resolve maps a module name or alias to a module of the index. It
// returns "" with ok true for something compiled into the kernel.
func (ix *modIndex) resolve(name string) (mod string, ok bool) {
	n := modName(name)
	if _, found := ix.mods[n]; found {
		return n, true
	}
	if ix.builtin[n] {
		return "", true
	}
	if a, found := ix.alias[name]; found {
		return a, true
	}
	return "", false
}

// closure returns the modules needed to load names, in load order
// (every module after all of its dependencies), and the requested names
// that are built into the kernel. Hard dependencies must exist; a soft
// dependency that resolves to nothing is skipped (it is usually built in
// under another name).
func (ix *modIndex) closure(names []string) (order, builtin []string, err error) {
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency loop: %s -> %s", strings.Join(chain, " -> "), n)
		}
		m := ix.mods[n]
		state[n] = 1
		for _, d := range ix.deps(m) {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, name := range names {
		n, ok := ix.resolve(name)
		switch {
		case !ok:
			err = errors.Join(err, fmt.Errorf("module %s: not in this kernel (neither a module nor built in)", name))
			continue
		case n == "":
			builtin = append(builtin, name)
			continue
		}
		if verr := visit(n, nil); verr != nil {
			err = errors.Join(err, verr)
		}
	}
	return order, builtin, errors.Join(err, ix.missingDeps(order))
}

// deps is what must be loaded before m: its hard dependencies, then its
// soft "pre" dependencies that resolve to a module. Hard dependencies
// that are missing are reported by the caller through visit.
func (ix *modIndex) deps(m *module) []string {
	var out []string
	for _, d := range m.Depends {
		if _, ok := ix.mods[d]; ok && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	for _, s := range m.SoftPre {
		if n, ok := ix.resolve(s); ok && n != "" && n != m.Name && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// missingDeps reports hard dependencies of the modules in order that the
// index does not have.
func (ix *modIndex) missingDeps(order []string) error {
	var errs []error
	for _, n := range order {
		for _, d := range ix.mods[n].Depends {
			if _, ok := ix.mods[d]; !ok && !ix.builtin[d] {
				errs = append(errs, fmt.Errorf("module %s depends on %s, which this kernel does not have", n, d))
			}
		}
	}
	return errors.Join(errs...)
}

// modulesDep returns modules.dep for the modules in order (a load order,
// as closure returns), in depmod's format: one line per module, its path,
// a colon, and all of its dependencies, direct and indirect, listed so
// that the last one is loaded first (the reverse of the load order):
//
//	kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
//
// Soft "pre" dependencies are listed as dependencies too, so a loader
// that reads only modules.dep (corral's) also loads crc32c before ext4.
func (ix *modIndex) modulesDep(order []string) string {
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	var b strings.Builder
	for _, n := range order {
		all := map[string]bool{}
		var walk func(string)
		walk = func(x string) {
			for _, d := range ix.deps(ix.mods[x]) {
				if !all[d] {
					all[d] = true
					walk(d)
				}
			}
		}
		walk(n)
		deps := make([]string, 0, len(all))
		for d := range all {
			deps = append(deps, d)
		}
		sort.Slice(deps, func(i, j int) bool { return pos[deps[i]] > pos[deps[j]] })
		b.WriteString(ix.mods[n].Path)
		b.WriteByte(':')
		for _, d := range deps {
			b.WriteByte(' ')
			b.WriteString(ix.mods[d].Path)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// installModules copies the modules in order from src (the package's
// lib/modules/<release>) into dst (the image's) and writes dst/modules.dep.
func (ix *modIndex) installModules(src, dst string, order []string) error {
	for _, n := range order {
		m := ix.mods[n]
		if err := copyFile(filepath.Join(src, m.Path), filepath.Join(dst, m.Path), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dst, "modules.dep"), []byte(ix.modulesDep(order)), 0o644)
}
