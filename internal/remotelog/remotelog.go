// Package remotelog forwards log lines to a central syslog collector:
// RFC 5424 messages over UDP (one datagram each) or TCP (octet-counted
// framing, RFC 6587).
//
// Send never blocks: lines wait in a bounded queue drained by one
// goroutine. When the collector is unreachable or slower than the lines,
// lines are dropped and counted; the next message that gets through is
// preceded by one saying how many were lost. After a failed connection
// the next attempt waits (1s, doubling up to a minute) for the next line
// after that time: no timer runs while nothing is logged.
package remotelog

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Facility is "daemon" (3): system daemons.
const facility = 3

// maxText bounds one message's text.
const maxText = 8 << 10

type msg struct {
	app  string
	t    time.Time
	sev  int
	text string
}

// Sender is one collector.
type Sender struct {
	network, addr, host string
	q                   chan msg
	quit                chan struct{}
	done                chan struct{}
	once                sync.Once
	dropped             atomic.Uint64
	sent                atomic.Uint64
}

// New starts a sender for network ("udp" or "tcp") and addr (host:port);
// host is the HOSTNAME field. Close stops it.
func New(network, addr, host string) *Sender {
	if host == "" {
		host = "-"
	}
	s := &Sender{network: network, addr: addr, host: host, q: make(chan msg, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// Send queues one line; severity is syslog's (3 error ... 7 debug).
func (s *Sender) Send(app string, t time.Time, severity int, text string) {
	select {
	case s.q <- msg{app, t, severity, text}:
	default:
		s.dropped.Add(1)
	}
}

// Dropped is how many lines never reached the collector.
func (s *Sender) Dropped() uint64 { return s.dropped.Load() }

// Sent is how many messages were written to the collector.
func (s *Sender) Sent() uint64 { return s.sent.Load() }

// Close stops the sender; queued lines are sent if the collector takes
// them within a second.
func (s *Sender) Close() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}

// Format is one RFC 5424 message: <PRI>1 TIMESTAMP HOST APP - - - TEXT.
func Format(host, app string, t time.Time, severity int, text string) []byte {
	if len(text) > maxText {
		text = text[:maxText]
	}
	b := make([]byte, 0, 64+len(host)+len(app)+len(text))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facility*8+severity), 10)
	b = append(b, ">1 "...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, ' ')
	b = append(b, field(host, 255)...)
	b = append(b, ' ')
	b = append(b, field(app, 48)...)
	b = append(b, " - - - "...)
	return append(b, text...)
}

// field makes a header field: printable ASCII without spaces, or "-".
func field(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return '_'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	if s == "" {
		return "-"
	}
	return s
}

func (s *Sender) run() {
	defer close(s.done)
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var retryAt time.Time
	backoff := time.Second
	var reported uint64
	write := func(m msg) error {
		b := Format(s.host, m.app, m.t, m.sev, m.text)
		if s.network == "tcp" {
			b = append([]byte(strconv.Itoa(len(b))+" "), b...)
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := conn.Write(b)
		return err
	}
	handle := func(m msg) {
		if conn == nil {
			if time.Now().Before(retryAt) {
				s.dropped.Add(1)
				return
			}
			c, err := net.DialTimeout(s.network, s.addr, 2*time.Second)
			if err != nil {
				s.dropped.Add(1)
				retryAt = time.Now().Add(backoff)
				backoff = min(2*backoff, time.Minute)
				return
			}
			conn, backoff = c, time.Second
		}
		if d := s.dropped.Load(); d != reported {
			note := msg{app: "corral", t: time.Now(), sev: 4, text: fmt.Sprintf("corral: dropped %d lines for this collector (unreachable or too slow)", d-reported)}
			if write(note) == nil {
				reported = d
				s.sent.Add(1)
			}
		}
		if err := write(m); err != nil {
			s.dropped.Add(1)
			conn.Close()
			conn = nil
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				retryAt = time.Now() // reconnect at the next line
			}
			return
		}
		s.sent.Add(1)
	}
	for {
		select {
		case m := <-s.q:
			handle(m)
		case <-s.quit:
			// What is queued gets a second to go out.
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				select {
				case m := <-s.q:
					handle(m)
				default:
					return
				}
			}
			return
		}
	}
}
