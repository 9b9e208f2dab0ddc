package main

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestExtSuperblock(t *testing.T) {
	b := make([]byte, 2048)
	binary.LittleEndian.PutUint16(b[1024+0x38:], 0xEF53)
	copy(b[1024+0x78:], "data")
	copy(b[1024+0x68:], []byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef})
	label, uuid, ok := extSuperblock(b)
	if !ok || label != "data" || uuid != "12345678-9abc-def0-0123-456789abcdef" {
		t.Errorf("got %q %q %v", label, uuid, ok)
	}
	if !deviceMatches("LABEL=data", b) || !deviceMatches("UUID=12345678-9ABC-DEF0-0123-456789ABCDEF", b) || deviceMatches("LABEL=root", b) {
		t.Error("deviceMatches")
	}
	if _, _, ok := extSuperblock(make([]byte, 2048)); ok {
		t.Error("a zero block is not ext4")
	}
	// A real file system made by mkfs.ext4, when e2fsprogs is installed.
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("no mkfs.ext4")
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", "appdata", "-U", "0f0e0d0c-0b0a-0908-0706-050403020100", img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	label, uuid, ok = extSuperblock(raw[:2048])
	if !ok || label != "appdata" || uuid != "0f0e0d0c-0b0a-0908-0706-050403020100" {
		t.Errorf("mkfs.ext4 image: got %q %q %v", label, uuid, ok)
	}
}

func TestMountOptions(t *testing.T) {
	flags, data := mountOptions("ro,noatime,data=ordered,defaults")
	if flags != 0x1|0x400 || data != "data=ordered" {
		t.Errorf("got %#x %q", flags, data)
	}
}
