package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// moduleInitCompressedFile is finit_module's MODULE_INIT_COMPRESSED_FILE:
// the kernel decompresses (Linux 5.17+, CONFIG_MODULE_DECOMPRESS).
const moduleInitCompressedFile = 4

// loadModules loads names and their dependencies from /lib/modules/<release>
// with finit_module: modules.dep when there is one, else each module's own
// depends= field. It returns what it loaded; a module that fails does not
// stop the others.
func loadModules(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var un unix.Utsname
	if err := unix.Uname(&un); err != nil {
		return nil, err
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(un.Release[:]))
	ix, err := moduleIndex(dir)
	if err != nil {
		return nil, err
	}
	present := func(n string) bool {
		_, err := os.Stat(filepath.Join("/sys/module", n))
		return err == nil
	}
	var errs []error
	var loaded []string
	for _, want := range names {
		order, err := ix.order([]string{want}, func(n string) bool { return present(n) || contains(loaded, n) })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range order {
			if err := finitModule(filepath.Join(dir, ix.path[n])); err != nil {
				errs = append(errs, fmt.Errorf("load module %s: %w", n, err))
				break
			}
			loaded = append(loaded, n)
		}
	}
	return loaded, errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func moduleIndex(dir string) (modIndex, error) {
	if f, err := os.Open(filepath.Join(dir, "modules.dep")); err == nil {
		defer f.Close()
		return parseModulesDep(f), nil
	}
	ix := modIndex{path: map[string]string{}, deps: map[string][]string{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(d.Name(), ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		n := modName(p)
		ix.path[n] = rel
		if strings.HasSuffix(p, ".ko") {
			if f, err := os.Open(p); err == nil {
				ix.deps[n], _ = modinfoDepends(f)
				f.Close()
			}
		}
		return nil
	})
	if err != nil {
		return ix, fmt.Errorf("index modules in %s: %w", dir, err)
	}
	return ix, nil
}

func finitModule(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if !strings.HasSuffix(file, ".ko") {
		flags = moduleInitCompressedFile
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}
