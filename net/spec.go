package net

import (
	"net/netip"
	"strconv"
)

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
	// Ports are published on the appliance: traffic to one of its own
	// addresses on Port.Host is forwarded to Address on Port.Container
	// (bridge mode only).
	Ports []Port
	// AllowFrom names services that may open connections to this one, on
	// top of the default policy (a service may connect to the services it
	// requires or starts after). Bridge mode only.
	AllowFrom []string
	// Isolated cuts the service off everything beyond the bridge: no NAT,
	// no port forwards, not the supervisor's addresses. Bridge mode only.
	Isolated bool
}

// Proto is the transport protocol of a port forward.
type Proto uint8

// The protocols a port can be forwarded for.
const (
	TCP Proto = iota
	UDP
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "unknown"
}

// ParseProto reads "tcp" or "udp".
func ParseProto(s string) (Proto, bool) {
	switch s {
	case "tcp":
		return TCP, true
	case "udp":
		return UDP, true
	}
	return 0, false
}

// Port is one published port: Host on the appliance, forwarded to
// Container on the service's address.
type Port struct {
	Host, Container uint16
	Proto           Proto
}

// String is the service file's form, "8080:80/tcp".
func (p Port) String() string {
	return strconv.Itoa(int(p.Host)) + ":" + strconv.Itoa(int(p.Container)) + "/" + p.Proto.String()
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
