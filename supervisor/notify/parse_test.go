package notify

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Message
		err  error
	}{
		{name: "ready", in: "READY=1", want: Message{Ready: true}},
		{name: "ready and status", in: "READY=1\nSTATUS=serving 3 clients\n", want: Message{Ready: true, Status: "serving 3 clients", HasStatus: true}},
		{name: "only literal 1 is ready", in: "READY=yes", want: Message{}},
		{name: "empty status", in: "STATUS=", want: Message{HasStatus: true}},
		{name: "status with equals", in: "STATUS=a=b", want: Message{Status: "a=b", HasStatus: true}},
		{name: "unknown keys ignored", in: "FOO=bar\nREADY=1", want: Message{Ready: true}},
		{name: "line without equals", in: "garbage\nSTOPPING=1", want: Message{Stopping: true}},
		{name: "watchdog and reloading", in: "WATCHDOG=1\nRELOADING=1", want: Message{Watchdog: true, Reloading: true}},
		{name: "empty", in: "", err: ErrEmpty},
		{name: "not utf8", in: "STATUS=\xff\xfe", err: ErrNotUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got.Ready != tt.want.Ready || got.Stopping != tt.want.Stopping || got.Reloading != tt.want.Reloading ||
				got.Watchdog != tt.want.Watchdog || got.Status != tt.want.Status || got.HasStatus != tt.want.HasStatus {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("READY=1\nSTATUS=ok"))
	f.Add([]byte("\x00=\n=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err == nil && m.Fields == nil {
			t.Fatal("nil Fields without error")
		}
		if m.Ready && m.Fields["READY"] != "1" {
			t.Fatal("Ready without READY=1")
		}
	})
}
