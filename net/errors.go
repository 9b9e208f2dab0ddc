package net

import "errors"

// Sentinel errors. Kernel errors keep their errno in the chain, so callers
// can also test errors.Is(err, unix.EPERM) and friends; a kernel without
// bridge or veth support answers EOPNOTSUPP, which errors.Is also matches
// against errors.ErrUnsupported.
var (
	// ErrNotBridge means a link with the bridge's name exists but is not a
	// bridge; Setup refuses to take it over.
	ErrNotBridge = errors.New("link exists and is not a bridge")
	// ErrBadAddress means a service address cannot be used on the bridge
	// subnet (outside it, the gateway, the network or broadcast address).
	ErrBadAddress = errors.New("bad address")
	// ErrBadName means an interface name the kernel would refuse.
	ErrBadName = errors.New("bad interface name")
	// ErrClosed means the Network was closed.
	ErrClosed = errors.New("network closed")
)
