package promtext

import (
	"bytes"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestParsedByPrometheus: what Write writes, the client library's own
// text parser reads back, awkward label values included.
func TestParsedByPrometheus(t *testing.T) {
	fams := []Family{
		{Name: "corral_service_up", Help: "1 if running.\nSecond line with a \\ backslash.", Type: Gauge, Samples: []Sample{
			{Labels: []Label{{"service", "web"}}, Value: 1},
			{Labels: []Label{{"service", `we"ird\name` + "\nx"}}, Value: 0},
		}},
		{Name: "corral_service_restarts_total", Help: "Restarts.", Type: Counter, Samples: []Sample{
			{Labels: []Label{{"service", "web"}, {"reason", "exit"}}, Value: 3},
		}},
		{Name: "corral_empty", Help: "No samples: left out.", Type: Gauge},
		{Name: "corral_odd_values", Help: "Odd.", Type: Gauge, Samples: []Sample{
			{Labels: []Label{{"v", "inf"}}, Value: math.Inf(1)},
			{Labels: []Label{{"v", "ninf"}}, Value: math.Inf(-1)},
			{Labels: []Label{{"v", "nan"}}, Value: math.NaN()},
			{Labels: []Label{{"v", "small"}}, Value: 1.5e-9},
			{Labels: []Label{{"v", "big"}}, Value: 123456789012},
		}},
		{Name: "corral_boot_seconds", Help: "No labels.", Type: Gauge, Samples: []Sample{{Value: 2.25}}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, fams); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	got, err := p.TextToMetricFamilies(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("expfmt cannot parse:\n%s\n%v", buf.String(), err)
	}
	if _, ok := got["corral_empty"]; ok {
		t.Error("a family without samples was written")
	}
	up := got["corral_service_up"]
	if up == nil || up.GetType() != dto.MetricType_GAUGE || up.GetHelp() != fams[0].Help {
		t.Fatalf("corral_service_up = %v", up)
	}
	vals := map[string]float64{}
	for _, m := range up.Metric {
		vals[m.Label[0].GetValue()] = m.GetGauge().GetValue()
	}
	if vals["web"] != 1 || vals[`we"ird\name`+"\nx"] != 0 || len(vals) != 2 {
		t.Errorf("labels read back as %v", vals)
	}
	r := got["corral_service_restarts_total"]
	if r.GetType() != dto.MetricType_COUNTER || r.Metric[0].GetCounter().GetValue() != 3 || len(r.Metric[0].Label) != 2 {
		t.Errorf("restarts = %v", r)
	}
	odd := map[string]float64{}
	for _, m := range got["corral_odd_values"].Metric {
		odd[m.Label[0].GetValue()] = m.GetGauge().GetValue()
	}
	if !math.IsInf(odd["inf"], 1) || !math.IsInf(odd["ninf"], -1) || !math.IsNaN(odd["nan"]) || odd["small"] != 1.5e-9 || odd["big"] != 123456789012 {
		t.Errorf("odd values read back as %v", odd)
	}
	if b := got["corral_boot_seconds"]; b.Metric[0].GetGauge().GetValue() != 2.25 {
		t.Errorf("boot = %v", b)
	}
}

// TestBadNamesLeftOut: a bad family is reported and skipped, the others
// still written.
func TestBadNamesLeftOut(t *testing.T) {
	one := []Sample{{Value: 1}}
	var buf bytes.Buffer
	err := Write(&buf, []Family{
		{Name: "good", Type: Gauge, Samples: one},
		{Name: "bad-name", Type: Gauge, Samples: one},
		{Name: "bad_label", Type: Gauge, Samples: []Sample{{Labels: []Label{{"1x", "v"}}, Value: 1}}},
		{Name: "dup_label", Type: Gauge, Samples: []Sample{{Labels: []Label{{"a", "1"}, {"a", "2"}}, Value: 1}}},
		{Name: "bad_type", Type: "histogram", Samples: one},
	})
	if err == nil || !strings.Contains(err.Error(), "bad-name") || !strings.Contains(err.Error(), "1x") ||
		!strings.Contains(err.Error(), "dup_label") || !strings.Contains(err.Error(), "histogram") {
		t.Errorf("error = %v", err)
	}
	if buf.String() != "# HELP good \n# TYPE good gauge\ngood 1\n" {
		t.Errorf("written:\n%s", buf.String())
	}
}
