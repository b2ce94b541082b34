package bench

import (
	"context"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
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
		Notes:       []string{"exe protection: sealed overlayfs"},
	}
	r.Metrics = append(r.Metrics, Metric{
		Group: "denial streaming", Name: "c", Unit: "denials/s", Baseline: "none",
		Stockade: Outcome{Summary: Summarize([]float64{150000})},
		Runc:     Outcome{NotApplicable: "runc streams no denials"},
	})
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
		"| denial streaming | c | denials/s | 150000 | 150000 | none | n/a | n/a | – | – |",
		"## Notes\n\n- exe protection: sealed overlayfs\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMarkdownNotApplicableIsNoFailure(t *testing.T) {
	if md := sample().Markdown(); strings.Contains(md, "runc streams no denials") {
		t.Errorf("a side with nothing to measure is listed as unavailable:\n%s", md)
	}
}

func TestUsernsConfig(t *testing.T) {
	base := "state_dir = \"/x\"\n\n[denials]\ndir = \"/y\"\n"
	for _, tc := range []struct {
		name, in string
		enabled  bool
		want     string
	}{
		{"on, no table: unchanged", base, true, base},
		{"off, no table: appended", base, false, base + "\n[userns]\nenabled = false\n"},
		{"table with key", "[userns]\nenabled = true\npool = \"\"\n[denials]\nenabled = true\n", false,
			"[userns]\nenabled = false\npool = \"\"\n[denials]\nenabled = true\n"},
		{"table without key", "[userns]\npool = \"\"\n\n[denials]\nenabled = true\n", false,
			"[userns]\nenabled = false\npool = \"\"\n\n[denials]\nenabled = true\n"},
		{"table later, other enabled keys first", "[denials]\nenabled = true\n[ userns ] # remap\n  enabled=false\n", true,
			"[denials]\nenabled = true\n[ userns ] # remap\nenabled = true\n"},
	} {
		got, err := usernsConfig(tc.in, tc.enabled)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := usernsConfig("[userns]\n[userns]\n", false); err == nil {
		t.Error("two [userns] tables: want an error")
	}
}

func TestCheckDenied(t *testing.T) {
	if err := checkDenied("keyctl ok=0 errors=500 errno=EPERM\n", 500); err != nil {
		t.Error(err)
	}
	for _, out := range []string{"keyctl ok=500 errors=0 errno=0\n", "keyctl ok=0 errors=500 errno=ENOSYS\n", "", "keyctl ok=0 errors=50 errno=EPERM"} {
		if checkDenied(out, 500) == nil {
			t.Errorf("%q accepted as 500 EPERM denials", out)
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

func TestOnlyRejectsUnknownGroups(t *testing.T) {
	names := StepNames()
	for _, want := range []string{"containers", "compat", "phases"} {
		if !slices.Contains(names, want) {
			t.Errorf("StepNames() = %q, want %s in it", names, want)
		}
	}
	_, err := Run(context.Background(), Config{Only: []string{"containers", "nope"}})
	if err == nil || !strings.Contains(err.Error(), `unknown metric group "nope"`) {
		t.Errorf("Run with -only nope: %v", err)
	}
}
