// Package promtext writes the Prometheus text exposition format (version
// 0.0.4), the one every Prometheus server and agent scrapes.
//
// corral writes its few gauges and counters itself instead of linking
// client_golang: that library brings net/http, protobuf and their
// initialisation into PID 1 (3 MB of binary on its own) to produce a
// dozen lines of text. The tests parse what this package writes with the
// client library's own parser (prometheus/common/expfmt), so the format
// stays what Prometheus reads.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Type is a metric family's type.
type Type string

// The types corral exposes.
const (
	Counter Type = "counter"
	Gauge   Type = "gauge"
)

// Label is one name="value" pair.
type Label struct{ Name, Value string }

// Sample is one line of a family.
type Sample struct {
	Labels []Label
	Value  float64
}

// Family is a metric with its help, type and samples. A family with no
// samples is left out, as client_golang does.
type Family struct {
	Name    string
	Help    string
	Type    Type
	Samples []Sample
}

// ContentType is what a scrape's answer says it is.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Write writes the families in order. A bad metric or label name is a
// programming error: it is reported and that family left out, the rest
// still written.
func Write(w io.Writer, fams []Family) error {
	bw := bufio.NewWriter(w)
	var bad []string
	for _, f := range fams {
		if len(f.Samples) == 0 {
			continue
		}
		if err := check(f); err != nil {
			bad = append(bad, err.Error())
			continue
		}
		bw.WriteString("# HELP " + f.Name + " " + escapeHelp(f.Help) + "\n")
		bw.WriteString("# TYPE " + f.Name + " " + string(f.Type) + "\n")
		for _, s := range f.Samples {
			bw.WriteString(f.Name)
			if len(s.Labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.Labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(l.Name + `="` + escapeValue(l.Value) + `"`)
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(formatValue(s.Value))
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("promtext: left out: %s", strings.Join(bad, "; "))
	}
	return nil
}

func check(f Family) error {
	if !validName(f.Name, true) {
		return fmt.Errorf("bad metric name %q", f.Name)
	}
	if f.Type != Counter && f.Type != Gauge {
		return fmt.Errorf("%s: bad type %q", f.Name, f.Type)
	}
	for _, s := range f.Samples {
		seen := map[string]bool{}
		for _, l := range s.Labels {
			if !validName(l.Name, false) || strings.HasPrefix(l.Name, "__") || seen[l.Name] {
				return fmt.Errorf("%s: bad or repeated label name %q", f.Name, l.Name)
			}
			seen[l.Name] = true
		}
	}
	return nil
}

// validName: [a-zA-Z_:][a-zA-Z0-9_:]* for metrics, no colons for labels.
func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (colon && c == ':') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeValue(s string) string { return valueEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
