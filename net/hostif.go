package net

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
)

const (
	// maxIfName is the longest interface name the kernel accepts
	// (IFNAMSIZ-1).
	maxIfName = 15
	// hostIfPrefix marks the host ends of service veths.
	hostIfPrefix = "crl"
	// hashedPrefixLen and hashLen split the room left after hostIfPrefix
	// in a hashed name: prefix + "." + hash.
	hashedPrefixLen = maxIfName - len(hostIfPrefix) - 1 - hashLen
	hashLen         = 6
)

// hashEncoding is lowercase RFC 4648 base32: only [a-z2-7], all valid in
// interface names.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// HostIfName returns the name of the host end of a service's veth pair.
//
// A service name of up to 12 characters from [A-Za-z0-9_-] gives "crl" +
// name, so `ip link` on the appliance reads naturally. Any other name (too
// long for IFNAMSIZ, or with characters outside that set) gives "crl" + a
// sanitized 5-byte prefix + "." + 6 base32 characters of SHA-256(name):
// exactly 15 bytes, stable across releases and reboots. Because direct names
// never contain '.', a hashed name cannot equal a direct one; two hashed
// names collide only if 30 bits of their hashes do.
func HostIfName(service string) string {
	if len(service) > 0 && len(hostIfPrefix)+len(service) <= maxIfName && plainName(service) {
		return hostIfPrefix + service
	}
	sum := sha256.Sum256([]byte(service))
	var b strings.Builder
	b.Grow(maxIfName)
	b.WriteString(hostIfPrefix)
	for i := 0; i < len(service) && i < hashedPrefixLen; i++ {
		c := service[i]
		if !plainByte(c) {
			c = '_'
		}
		b.WriteByte(c)
	}
	b.WriteByte('.')
	b.WriteString(hashEncoding.EncodeToString(sum[:])[:hashLen])
	return b.String()
}

func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte(s[i]) {
			return false
		}
	}
	return true
}

func plainByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// validIfName reports whether the kernel accepts name as an interface name
// (net/core/dev.c dev_valid_name).
func validIfName(name string) bool {
	if name == "" || len(name) > maxIfName || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0, 0xa0: // the kernel's isspace includes 0xa0
			return false
		}
	}
	return true
}
