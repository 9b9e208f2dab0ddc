//go:build linux && !amd64 && !arm64

package container

// No filter for this architecture: a service that asks for one fails to
// start, loudly (seccomp = "off" runs it without).
const (
	auditArch = 0
	x32Bit    = 0
)

var archDeniedSyscalls []uintptr
