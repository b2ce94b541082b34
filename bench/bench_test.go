package bench

import (
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p, want float64
	}{
		{0, 1}, {50, 5.5}, {100, 10}, {99, 9.91},
	} {
		if got := Percentile(sorted, tc.p); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile([]float64{42}, 99); got != 42 {
		t.Errorf("one sample: got %v", got)
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("no samples: want NaN")
	}
}

func TestSummarizeKeepsSampleOrder(t *testing.T) {
	in := []float64{3, 1, 2}
	s := Summarize(in)
	if s.P50 != 2 || s.Min != 1 || s.Max != 3 || s.Mean != 2 || s.N != 3 {
		t.Errorf("summary %+v", s)
	}
	if in[0] != 3 || s.Samples[0] != 3 {
		t.Error("Summarize reordered the caller's samples")
	}
	if Summarize(nil) != nil {
		t.Error("no samples: want nil")
	}
}

// sample has one measured metric and one where stockade was unavailable.
func sample() *Results {
	r := &Results{
		Machine: Machine{NProc: 2, Kernel: "6.x", CPUModel: "test cpu"},
		Config:  RunConfig{N: 3, Smoke: true},
		Metrics: []Metric{
			{
				Group: "container start", Name: "a", Unit: "ms", Baseline: "runc",
				Stockade: Outcome{Summary: Summarize([]float64{50, 60})},
				Runc:     Outcome{Summary: Summarize([]float64{100, 120})},
			},
			{
				Group: "shim memory", Name: "b", Unit: "MiB", Baseline: "runc",
				Stockade: Outcome{Unavailable: "shim binary missing"},
				Runc:     Outcome{Summary: Summarize([]float64{17})},
			},
		},
		NotMeasured: []NotMeasured{{Name: "denial rate", Reason: "no stream yet"}},
	}
	for i := range r.Metrics {
		m := &r.Metrics[i]
		m.RatioP50 = JSONFloat(ratio(m.Stockade.Summary, m.Runc.Summary, p50))
		m.RatioP99 = JSONFloat(ratio(m.Stockade.Summary, m.Runc.Summary, p99))
	}
	return r
}

func TestMarkdown(t *testing.T) {
	md := sample().Markdown()
	for _, want := range []string{
		"| container start | a | ms | 55.0 |",
		"0.50×",
		"| shim memory | b | MiB | unavailable | unavailable | runc | 17.0 | 17.0 | – | – |",
		"stockade: unavailable (shim binary missing)",
		"not measured: denial rate — no stream yet",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	if err := sample().WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("latest.json does not decode: %v", err)
	}
	if !math.IsNaN(float64(back.Metrics[1].RatioP50)) || float64(back.Metrics[0].RatioP50) != 0.5 {
		t.Errorf("ratios after round trip: %v, %v", back.Metrics[0].RatioP50, back.Metrics[1].RatioP50)
	}
	f, err := os.Open(filepath.Join(dir, "latest.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("latest.png: %v", err)
	}
}
