package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"strings"
)

// modIndex maps module names to their files (relative to
// /lib/modules/<release>) and direct dependencies.
type modIndex struct {
	path map[string]string
	deps map[string][]string
}

// modName normalizes a module name or file name: the kernel treats "-"
// and "_" alike.
func modName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		s = strings.TrimSuffix(s, ext)
	}
	return strings.ReplaceAll(strings.TrimSuffix(s, ".ko"), "-", "_")
}

// parseModulesDep reads modules.dep ("kernel/a.ko: kernel/b.ko kernel/c.ko").
func parseModulesDep(r io.Reader) modIndex {
	ix := modIndex{path: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		file, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n := modName(file)
		ix.path[n] = strings.TrimSpace(file)
		for _, d := range strings.Fields(deps) {
			ix.deps[n] = append(ix.deps[n], modName(d))
		}
	}
	return ix
}

// modinfoDepends reads the depends= field of an (uncompressed) module's
// .modinfo section, for trees that ship no modules.dep.
func modinfoDepends(r io.ReaderAt) ([]string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var out []string
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					out = append(out, modName(d))
				}
			}
			return out, nil
		}
	}
	return nil, nil
}

// order returns the modules to load for names, dependencies first, each
// once. skip reports modules already present (built in or loaded).
func (ix modIndex) order(names []string, skip func(string) bool) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		if seen[n] {
			return nil
		}
		for _, c := range chain {
			if c == n {
				return fmt.Errorf("module dependency loop: %s -> %s", strings.Join(chain, " -> "), n)
			}
		}
		if skip(n) {
			seen[n] = true
			return nil
		}
		if _, ok := ix.path[n]; !ok {
			return fmt.Errorf("module %s not found", n)
		}
		for _, d := range ix.deps[n] {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		seen[n] = true
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(modName(n), nil); err != nil {
			return out, err
		}
	}
	return out, nil
}
