package main

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// extSuperblock reads the label and UUID of an ext2/3/4 file system from
// the first 2 KiB of its device. There is no udev (and so no
// /dev/disk/by-label) on these images: corral looks itself.
func extSuperblock(b []byte) (label, uuid string, ok bool) {
	const off = 1024
	if len(b) < off+0x88 || binary.LittleEndian.Uint16(b[off+0x38:]) != 0xEF53 {
		return "", "", false
	}
	l := b[off+0x78 : off+0x88]
	if i := strings.IndexByte(string(l), 0); i >= 0 {
		l = l[:i]
	}
	u := b[off+0x68 : off+0x78]
	uuid = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	return string(l), uuid, true
}

// deviceMatches reports whether a device whose first 2 KiB are b is the one
// spec ("LABEL=x" or "UUID=y") names.
func deviceMatches(spec string, b []byte) bool {
	label, uuid, ok := extSuperblock(b)
	if !ok {
		return false
	}
	if v, found := strings.CutPrefix(spec, "LABEL="); found {
		return v == label
	}
	if v, found := strings.CutPrefix(spec, "UUID="); found {
		return strings.EqualFold(v, uuid)
	}
	return false
}

// mountOptions splits "ro,noatime,data=ordered" into mount(2) flags and the
// file-system-specific rest.
func mountOptions(opts string) (flags uintptr, data string) {
	known := map[string]uintptr{
		"ro": 0x1, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "sync": 0x10,
		"noatime": 0x400, "nodiratime": 0x800, "relatime": 0x200000,
	}
	var rest []string
	for _, o := range strings.Split(opts, ",") {
		switch f, ok := known[o]; {
		case o == "" || o == "rw" || o == "defaults":
		case ok:
			flags |= f
		default:
			rest = append(rest, o)
		}
	}
	return flags, strings.Join(rest, ",")
}
