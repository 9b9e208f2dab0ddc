package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeKo writes a minimal arm64 ELF relocatable with a .modinfo section,
// which is all readModule looks at.
func fakeKo(t *testing.T, path string, modinfo ...string) {
	t.Helper()
	info := []byte(strings.Join(modinfo, "\x00") + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	infoOff := ehsize
	shstrOff := infoOff + len(info)
	shOff := (shstrOff + len(shstr) + 7) &^ 7
	var b bytes.Buffer
	le := binary.LittleEndian
	ident := [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	b.Write(ident[:])
	for _, v := range []any{
		uint16(elf.ET_REL), uint16(elf.EM_AARCH64), uint32(elf.EV_CURRENT),
		uint64(0), uint64(0), uint64(shOff), // entry, phoff, shoff
		uint32(0), uint16(ehsize), uint16(0), uint16(0), // flags, ehsize, phentsize, phnum
		uint16(shentsize), uint16(3), uint16(2), // shentsize, shnum, shstrndx
	} {
		_ = binary.Write(&b, le, v)
	}
	b.Write(info)
	b.Write(shstr)
	b.Write(make([]byte, shOff-b.Len()))
	sh := func(name uint32, typ elf.SectionType, off, size int) {
		for _, v := range []any{name, uint32(typ), uint64(0), uint64(0), uint64(off), uint64(size), uint32(0), uint32(0), uint64(1), uint64(0)} {
			_ = binary.Write(&b, le, v)
		}
	}
	sh(0, elf.SHT_NULL, 0, 0)
	sh(1, elf.SHT_PROGBITS, infoOff, len(info))
	sh(10, elf.SHT_STRTAB, shstrOff, len(shstr))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseModinfo(t *testing.T) {
	b := []byte("license=GPL\x00softdep=pre: crypto-crc32c post: foo\x00alias=fs-ext4\x00alias=pci:v00001AF4d*\x00depends=jbd2,mbcache,crc16\x00name=ext4\x00\x00\x00")
	deps, soft, aliases := parseModinfo(b)
	if want := []string{"jbd2", "mbcache", "crc16"}; !reflect.DeepEqual(deps, want) {
		t.Errorf("depends = %q, want %q", deps, want)
	}
	if want := []string{"crypto-crc32c"}; !reflect.DeepEqual(soft, want) {
		t.Errorf("softdep pre = %q, want %q", soft, want)
	}
	if want := []string{"fs-ext4"}; !reflect.DeepEqual(aliases, want) {
		t.Errorf("aliases = %q, want %q (no wildcards)", aliases, want)
	}
	if deps, _, _ := parseModinfo([]byte("depends=\x00name=veth\x00")); len(deps) != 0 {
		t.Errorf("empty depends= gave %q", deps)
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/crypto/crc32c_generic.ko": "crc32c_generic",
		"nf-tables":                       "nf_tables",
		"kernel/fs/ext4/ext4.ko":          "ext4",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

// testKernel is a small module tree shaped like Debian's.
func testKernel(t *testing.T) string {
	dir := t.TempDir()
	for path, info := range map[string][]string{
		"kernel/net/bridge/bridge.ko":                    {"alias=rtnl-link-bridge", "depends=llc,stp", "name=bridge"},
		"kernel/net/802/stp.ko":                          {"depends=llc", "name=stp"},
		"kernel/net/llc/llc.ko":                          {"depends=", "name=llc"},
		"kernel/drivers/net/veth.ko":                     {"depends=", "name=veth"},
		"kernel/fs/ext4/ext4.ko":                         {"softdep=pre: crypto-crc32c", "depends=jbd2,mbcache,crc16", "name=ext4"},
		"kernel/fs/jbd2/jbd2.ko":                         {"depends=", "name=jbd2"},
		"kernel/fs/mbcache.ko":                           {"depends=", "name=mbcache"},
		"kernel/lib/crc16.ko":                            {"depends=", "name=crc16"},
		"kernel/crypto/crc32c_generic.ko":                {"alias=crypto-crc32c", "alias=crc32c", "depends=", "name=crc32c_generic"},
		"kernel/lib/libcrc32c.ko":                        {"softdep=pre: crc32c", "depends=", "name=libcrc32c"},
		"kernel/drivers/virtio/virtio_pci.ko":            {"depends=virtio_pci_modern_dev,virtio_pci_legacy_dev", "name=virtio_pci"},
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko": {"depends=", "name=virtio_pci_modern_dev"},
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko": {"depends=", "name=virtio_pci_legacy_dev"},
		"kernel/loop/a.ko":                               {"depends=b", "name=a"},
		"kernel/loop/b.ko":                               {"depends=a", "name=b"},
		"kernel/broken/needy.ko":                         {"depends=ghost", "name=needy"},
		"kernel/drivers/uses-builtin.ko":                 {"depends=virtio_ring", "name=uses_builtin"},
	} {
		fakeKo(t, filepath.Join(dir, path), info...)
	}
	builtin := "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/fs/overlayfs/overlay.ko\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestModuleClosure(t *testing.T) {
	ix, err := indexModules(testKernel(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		mods        []string
		order       []string
		builtin     []string
		errContains string
	}{
		{name: "bridge", mods: []string{"veth", "bridge"}, order: []string{"veth", "llc", "stp", "bridge"}},
		{name: "file names and dashes", mods: []string{"virtio-pci"}, order: []string{"virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"}},
		{name: "soft dependency by alias", mods: []string{"ext4"}, order: []string{"jbd2", "mbcache", "crc16", "crc32c_generic", "ext4"}},
		{name: "shared dependencies once", mods: []string{"libcrc32c", "ext4"}, order: []string{"crc32c_generic", "libcrc32c", "jbd2", "mbcache", "crc16", "ext4"}},
		{name: "built in", mods: []string{"overlay", "veth"}, order: []string{"veth"}, builtin: []string{"overlay"}},
		{name: "built-in dependency", mods: []string{"uses_builtin"}, order: []string{"uses_builtin"}},
		{name: "unknown", mods: []string{"nosuch"}, errContains: "module nosuch: not in this kernel"},
		{name: "missing dependency", mods: []string{"needy"}, order: []string{"needy"}, errContains: "needy depends on ghost"},
		{name: "loop", mods: []string{"a"}, errContains: "module dependency loop: a -> b -> a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order, builtin, err := ix.closure(tt.mods)
			if tt.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errContains)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.order != nil && !reflect.DeepEqual(order, tt.order) {
				t.Errorf("order = %q, want %q", order, tt.order)
			}
			if !reflect.DeepEqual(builtin, tt.builtin) {
				t.Errorf("builtin = %q, want %q", builtin, tt.builtin)
			}
		})
	}
}

func TestModulesDep(t *testing.T) {
	ix, err := indexModules(testKernel(t))
	if err != nil {
		t.Fatal(err)
	}
	order, _, err := ix.closure([]string{"veth", "bridge", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	got := ix.modulesDep(order)
	// Every module's dependencies, direct and indirect, the last to be
	// loaded first; soft dependencies count.
	want := `kernel/drivers/net/veth.ko:
kernel/net/llc/llc.ko:
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/fs/ext4/ext4.ko: kernel/crypto/crc32c_generic.ko kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
`
	if got != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, want)
	}
}

func TestInstallModules(t *testing.T) {
	src := testKernel(t)
	ix, err := indexModules(src)
	if err != nil {
		t.Fatal(err)
	}
	order, _, _ := ix.closure([]string{"bridge"})
	dst := filepath.Join(t.TempDir(), "lib/modules/6.1.0-99-arm64")
	if err := ix.installModules(src, dst, order); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"kernel/net/bridge/bridge.ko", "kernel/net/802/stp.ko", "kernel/net/llc/llc.ko", "modules.dep"} {
		if _, err := os.Stat(filepath.Join(dst, p)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "kernel/drivers/net/veth.ko")); err == nil {
		t.Error("veth was installed, but nothing asked for it")
	}
}

func TestIndexRejectsCompressedModules(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "veth.ko.xz"), []byte("xz"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := indexModules(dir); err == nil || !strings.Contains(err.Error(), "compressed") {
		t.Errorf("err = %v, want one about compressed modules", err)
	}
}
