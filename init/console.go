package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/corral-init/corral/internal/console"
)

// logSetup is corral's one logger and the console it writes to.
type logSetup struct {
	con   *console.Writer
	log   zerolog.Logger
	human bool
}

// newLogger builds the root logger: JSON, or human lines on a terminal
// (format "auto"), always through a console writer that never blocks.
func newLogger(out *os.File, format, level string) *logSetup {
	con := console.New(out, 4096)
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
	return &logSetup{con: con, human: human, log: zerolog.New(w).Level(lvl).With().Timestamp().Logger()}
}

// serviceLine echoes one line of a service's output on the console,
// prefixed with its name.
func (l *logSetup) serviceLine(svc, text string, partial bool) {
	if !l.human {
		l.log.Info().Str("svc", svc).Bool("output", true).Msg(text)
		return
	}
	var b strings.Builder
	// The console is a terminal: no escape sequence of a service's may
	// clear it or forge a line of corral's.
	fmt.Fprintf(&b, "%12s | %s", svc, sanitize(text))
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
