package notify

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// Message is one parsed notify datagram.
type Message struct {
	Ready     bool // READY=1
	Reloading bool // RELOADING=1
	Stopping  bool // STOPPING=1
	Watchdog  bool // WATCHDOG=1
	// Status is the STATUS= text, if the datagram had one.
	Status    string
	HasStatus bool
	// Barrier is BARRIER=1: the sender waits until the fd it passed is
	// closed, which says every earlier datagram has been processed.
	Barrier bool
	// Fields holds every assignment, including the ones above, last wins.
	Fields map[string]string
}

// Errors for datagrams that are dropped.
var (
	ErrEmpty   = errors.New("empty datagram")
	ErrNotUTF8 = errors.New("datagram is not valid UTF-8")
)

// Parse parses a datagram. Lines without "=" are ignored, as systemd does.
func Parse(b []byte) (Message, error) {
	if len(b) == 0 {
		return Message{}, ErrEmpty
	}
	if !utf8.Valid(b) {
		return Message{}, ErrNotUTF8
	}
	m := Message{Fields: map[string]string{}}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		m.Fields[k] = v
		switch k {
		case "READY":
			m.Ready = v == "1"
		case "RELOADING":
			m.Reloading = v == "1"
		case "STOPPING":
			m.Stopping = v == "1"
		case "WATCHDOG":
			m.Watchdog = v == "1"
		case "STATUS":
			m.Status, m.HasStatus = v, true
		case "BARRIER":
			m.Barrier = v == "1"
		}
	}
	return m, nil
}
