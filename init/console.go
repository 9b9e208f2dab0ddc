package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/console"
	"github.com/corral-init/corral/supervisor"
)

// logSetup is corral's one logger, the console it writes to, and the log
// streams (corral's own, "corral", and every service's).
type logSetup struct {
	con   *console.Writer
	log   zerolog.Logger
	human bool
	logs  *supervisor.Logs
	// conLog writes service output to the console in JSON mode: not
	// through log, so it does not fill corral's own stream.
	conLog zerolog.Logger
}

// newLogger builds the root logger: JSON, or human lines on a terminal
// (format "auto"), always through a console writer that never blocks; and
// JSON into corral's own log stream too (`corral logs corral`, and its
// file once [log] dir is known).
func newLogger(out *os.File, format, level string) *logSetup {
	con := console.New(out, 4096)
	logs := supervisor.NewLogs(supervisor.LogOptions{})
	own := supervisor.ZerologWriter{S: logs.Stream(supervisor.CorralStream)}
	human := format == "console" || (format != "json" && isTerminal(out))
	var w io.Writer = con
	if human {
		w = zerolog.ConsoleWriter{
			Out:        con,
			TimeFormat: "15:04:05.000",
			NoColor:    !isTerminal(out),
			// svc leads the message; from/to/event are in it too.
			FieldsExclude: []string{"svc", "from", "to", "event"},
			FormatMessage: func(i any) string { return fmt.Sprint(i) },
			FormatPrepare: func(m map[string]any) error {
				if svc, ok := m["svc"].(string); ok {
					m[zerolog.MessageFieldName] = fmt.Sprintf("%-8s %v", svc, m[zerolog.MessageFieldName])
				}
				return nil
			},
		}
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	log := zerolog.New(zerolog.MultiLevelWriter(levelWriter{w}, own)).Level(lvl).With().Timestamp().Logger()
	return &logSetup{con: con, human: human, log: log, logs: logs, conLog: zerolog.New(con).With().Timestamp().Logger()}
}

// levelWriter gives a plain writer the zerolog.LevelWriter method, so the
// multi-writer hands corral's stream the level (for syslog severities).
type levelWriter struct{ io.Writer }

func (w levelWriter) WriteLevel(_ zerolog.Level, p []byte) (int, error) { return w.Write(p) }

// serviceLine echoes one line of a service's output on the console,
// prefixed with its name.
// consoleLineMax is how much of a service's line the human console shows.
const consoleLineMax = 512

func (l *logSetup) serviceLine(svc, text string, partial bool) {
	if !l.human {
		l.conLog.Info().Str("svc", svc).Bool("output", true).Msg(text)
		return
	}
	var b strings.Builder
	// A serial console carries about 11 KB/s: a line's first 512 bytes are
	// enough to read there, and the log keeps it whole.
	more := 0
	if len(text) > consoleLineMax {
		cut := consoleLineMax
		for cut > consoleLineMax-4 && !utf8.RuneStart(text[cut]) {
			cut-- // not in the middle of a character
		}
		text, more = text[:cut], len(text)-cut
	}
	// The console is a terminal: no escape sequence of a service's may
	// clear it or forge a line of corral's.
	fmt.Fprintf(&b, "%12s | %s", svc, sanitize(text))
	if more > 0 {
		fmt.Fprintf(&b, " … (%d more bytes: corral logs %s)", more, svc)
	}
	if partial {
		b.WriteString(" ⏎")
	}
	b.WriteByte('\n')
	_, _ = l.con.Write([]byte(b.String()))
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
