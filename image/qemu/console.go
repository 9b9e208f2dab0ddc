package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The serial console carries two kinds of lines: corral's log, one JSON
// object per line (with --log-format=json), and everything else as plain
// text: the kernel's printk lines ("[    1.234567] ..."), busybox, qemu's
// own complaints on stderr. A kernel message can land in the middle of a
// userspace line; a JSON object is looked for from the first `{"` on.

// Line is one console line, stamped with the host's clock.
type Line struct {
	At    time.Duration  // since qemu was started
	Text  string         // without the line end
	JSON  map[string]any // the decoded object, nil for a plain line
	KTime float64        // the kernel's printk timestamp in seconds, -1 if none
	Qemu  bool           // from qemu's stderr, not the guest
}

var ktimeRe = regexp.MustCompile(`^\[\s*(\d+\.\d+)\]`)

// parseLine classifies one line of console output.
func parseLine(at time.Duration, text string) Line {
	text = strings.TrimRight(text, "\r\n")
	text = strings.ReplaceAll(text, "\r", "")
	l := Line{At: at, Text: text, KTime: -1}
	if m := ktimeRe.FindStringSubmatch(text); m != nil {
		l.KTime, _ = strconv.ParseFloat(m[1], 64)
	}
	if i := strings.Index(text, `{"`); i >= 0 {
		if j := strings.LastIndexByte(text, '}'); j > i {
			var obj map[string]any
			if json.Unmarshal([]byte(text[i:j+1]), &obj) == nil {
				l.JSON = obj
			}
		}
	}
	return l
}

// str returns a JSON field as a string ("" if absent or not a string).
func (l Line) str(key string) string {
	s, _ := l.JSON[key].(string)
	return s
}

// isKernel reports whether the line is a kernel printk line.
func (l Line) isKernel() bool { return l.JSON == nil && l.KTime >= 0 }
