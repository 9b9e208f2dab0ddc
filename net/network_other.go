//go:build !linux

package net

import (
	"errors"
	"fmt"
	"net/netip"
)

// Network is the bridge network in the caller's network namespace. Only
// Linux has one; elsewhere every operation reports errors.ErrUnsupported,
// so packages that use this one still build and unit-test on any OS.
type Network struct{}

func unsupported(what string) error {
	return fmt.Errorf("%s: %w", what, errors.ErrUnsupported)
}

// Options are what Setup does besides the bridge.
type Options struct {
	Firewall  *Firewall
	StateFile string
}

// SetupReport says what Setup found and cleaned up.
type SetupReport struct {
	Uplink          string
	MTU             uint32
	Stale, Restored []string
}

// Setup is only supported on Linux.
func Setup(cfg BridgeConfig, o Options) (*Network, SetupReport, error) {
	return nil, SetupReport{}, unsupported("set up bridge " + cfg.Name)
}

// Forward is only supported on Linux.
func (n *Network) Forward() (func(), error) { return nil, unsupported("forwarding") }

// Attach is only supported on Linux.
func (n *Network) Attach(nsFD int, hostIf string, addr netip.Addr) error {
	return unsupported("attach " + hostIf)
}

// Detach is only supported on Linux.
func (n *Network) Detach(hostIf string) error { return unsupported("detach " + hostIf) }

// Close is only supported on Linux.
func (n *Network) Close() error { return nil }

// Remove is only supported on Linux.
func (n *Network) Remove() error { return unsupported("delete bridge") }

// LoopbackUp is only supported on Linux.
func LoopbackUp(nsFD int) error { return unsupported("set lo up") }

// LinkExists is only supported on Linux.
func LinkExists(name string) (bool, error) { return false, unsupported("look up link " + name) }

// ErrNetworkBusy is LockNamespace's answer when another process holds it.
var ErrNetworkBusy = errors.New("another corral runs the network of this network namespace")

// LockNamespace is Linux only.
func LockNamespace() error { return unsupported("network lock") }
