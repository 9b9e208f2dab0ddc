package remotelog

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	got := string(Format("box", "web", time.Date(2026, 12, 4, 7, 15, 0, 123456000, time.UTC), 6, "hello world"))
	if want := "<30>1 2026-12-04T07:15:00.123456Z box web - - - hello world"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := string(Format("", "a b", time.Unix(0, 0), 3, "x")); !strings.HasPrefix(got, "<27>1 1970-01-01T00:00:00.000000Z - a_b - - - x") {
		t.Errorf("got %q", got)
	}
}

func TestUDPAndTCP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	u := New("udp", pc.LocalAddr().String(), "box")
	u.Send("web", time.Now(), 6, "over udp")
	buf := make([]byte, 4096)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil || !strings.HasSuffix(string(buf[:n]), " box web - - - over udp") {
		t.Errorf("udp: %q %v", buf[:n], err)
	}
	u.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tc := New("tcp", ln.Addr().String(), "box")
	defer tc.Close()
	tc.Send("db", time.Now(), 3, "over tcp")
	tc.Send("db", time.Now(), 6, "second")
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, want := range []string{"<27>1 ", "<30>1 "} {
		l, err := br.ReadString(' ')
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(l))
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil || !strings.HasPrefix(string(frame), want) {
			t.Errorf("tcp frame %q (%d bytes) %v, want prefix %q", frame, n, err, want)
		}
	}
}

func TestUnreachableDropsAndCounts(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := New("tcp", addr, "box")
	for i := 0; i < 5; i++ {
		s.Send("web", time.Now(), 6, "lost")
	}
	s.Close()
	if s.Dropped() != 5 {
		t.Errorf("dropped %d, want 5", s.Dropped())
	}
}
