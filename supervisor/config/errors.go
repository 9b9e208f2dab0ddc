package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Error is one problem in one configuration file. Load collects them in
// Config.Problems; a file's problems never stop other files from loading.
type Error struct {
	// File is the path of the file, joined from the directory given to Load.
	File string
	// Line is 1-based; 0 means the whole file or an unknown line.
	Line int
	// Key is the key path, e.g. "limits.memory", "requires[1]" or
	// "container.mounts[0].target" (array indexes count from 0); "" means
	// the whole file.
	Key string
	// Msg says what is wrong and, where it can, how to fix it.
	Msg string
}

// Error formats e as FILE:LINE: KEY: MSG, leaving out ":LINE" when the line
// is unknown and "KEY: " when the problem is about the whole file.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(e.keyMsg())
	return b.String()
}

// keyMsg is the error without its position, used as a disabled reason.
func (e *Error) keyMsg() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// decodeErrorRE matches the plain fmt errors BurntSushi/toml returns from
// decoding into Go values (as opposed to toml.ParseError for syntax), e.g.
//
//	toml: line 3 (last key "restart"): incompatible types: TOML value has type int64; destination has type string
//
// TestTOMLErrorFormat pins this format, so a library upgrade that changes it
// fails loudly instead of losing positions.
var decodeErrorRE = lazyRegexp(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): (.+)$`)

// tomlError turns an error from toml.Decode of text into an Error with the
// best position we can find.
func (f *fileState) tomlError(text string, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		// Position.Line is one too far when the error is at a line end (the
		// lexer has consumed the newline already); the byte offset is not.
		line := pe.Position.Line
		if line > 0 && pe.Position.Start >= 0 && pe.Position.Start <= len(text) {
			line = strings.Count(text[:pe.Position.Start], "\n") + 1
		}
		// LastKey is the last key parsed, which is not always the one at
		// fault; name it only when it sits on the line of the error.
		return &Error{File: f.file, Line: line, Key: f.lines.keyAt(pe.LastKey, line), Msg: tidy(pe.Message)}
	}
	if m := decodeErrorRE().FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, uerr := strconv.Unquote(m[2])
		if uerr != nil {
			key = ""
		}
		if k := f.lines.keyAt(key, line); k != "" {
			key = k
		}
		if line == 0 {
			line = f.lines.line(key)
		}
		return &Error{File: f.file, Line: line, Key: key, Msg: tidy(m[3])}
	}
	return &Error{File: f.file, Msg: tidy(err.Error())}
}

// tidy makes a library message follow our style: lowercase first word, no
// trailing period.
func tidy(msg string) string {
	msg = strings.TrimSuffix(strings.TrimSpace(msg), ".")
	r, n := utf8.DecodeRuneInString(msg)
	if r2, _ := utf8.DecodeRuneInString(msg[n:]); unicode.IsUpper(r) && !unicode.IsUpper(r2) {
		msg = string(unicode.ToLower(r)) + msg[n:]
	}
	return msg
}
