package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestModuleOrder(t *testing.T) {
	ix := parseModulesDep(strings.NewReader(`kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/drivers/net/veth.ko:
kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/net/x/nf-tables.ko:
`))
	tests := []struct {
		names   []string
		present string
		want    string
		err     string
	}{
		{names: []string{"bridge"}, want: "llc stp bridge"},
		{names: []string{"veth", "bridge", "stp"}, want: "veth llc stp bridge"},
		{names: []string{"bridge"}, present: "llc", want: "stp bridge"},
		{names: []string{"ext4"}, want: "crc16 jbd2 mbcache ext4"},
		{names: []string{"nf_tables"}, want: "nf_tables"},
		{names: []string{"nf-tables"}, want: "nf_tables"},
		{names: []string{"nope"}, err: "module nope not found"},
	}
	for _, tt := range tests {
		got, err := ix.order(tt.names, func(n string) bool { return strings.Contains(" "+tt.present+" ", " "+n+" ") })
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%v: err %v, want %s", tt.names, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("%v: got %v %v, want %s", tt.names, got, err, tt.want)
		}
	}
	if ix.path["ext4"] != "kernel/fs/ext4/ext4.ko.xz" {
		t.Errorf("ext4 path %q", ix.path["ext4"])
	}
}

func TestModinfoDepends(t *testing.T) {
	if _, err := modinfoDepends(strings.NewReader("not an elf")); err == nil {
		t.Error("no error for a non-ELF file")
	}
	// An object file with a .modinfo section, as a kernel module has.
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to make an ELF object with a .modinfo section")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "m.c")
	os.WriteFile(src, []byte(`static const char m[] __attribute__((used, section(".modinfo"))) = "license=GPL\0depends=stp,llc-x\0name=bridge";`), 0o644)
	obj := filepath.Join(dir, "m.o")
	if out, err := exec.Command(cc, "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	f, err := os.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps, err := modinfoDepends(f)
	if err != nil || strings.Join(deps, ",") != "stp,llc_x" {
		t.Errorf("depends %v %v, want [stp llc_x]", deps, err)
	}
}
