package net

import "net/netip"

// Mode is how a service is networked.
type Mode uint8

// The network modes of a service.
const (
	// ModeBridge gives the service its own network namespace with a veth
	// pair whose host end is attached to the supervisor's bridge.
	ModeBridge Mode = iota
	// ModeHost shares the supervisor's network namespace.
	ModeHost
	// ModeNone gives the service its own network namespace with only lo.
	ModeNone
)

func (m Mode) String() string {
	switch m {
	case ModeBridge:
		return "bridge"
	case ModeHost:
		return "host"
	case ModeNone:
		return "none"
	}
	return "unknown"
}

// ParseMode turns a service file's mode string into a Mode.
func ParseMode(s string) (Mode, bool) {
	switch s {
	case "bridge", "":
		return ModeBridge, true
	case "host":
		return ModeHost, true
	case "none":
		return ModeNone, true
	}
	return 0, false
}

// Spec is the network part of a service definition.
type Spec struct {
	Mode Mode
	// Address is the service's IPv4 address on the bridge (bridge mode
	// only). Config fills it in, from the file or from the pool.
	Address netip.Addr
}

// BridgeConfig is the supervisor-wide bridge network.
type BridgeConfig struct {
	// Name of the bridge interface in the supervisor's network namespace.
	Name string
	// Subnet of the bridge; its first host address is the gateway.
	Subnet netip.Prefix
}

// Gateway returns the bridge's own address: the first host address of the
// subnet.
func (b BridgeConfig) Gateway() netip.Addr {
	return b.Subnet.Masked().Addr().Next()
}
