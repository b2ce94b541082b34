package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Machine describes where the numbers were taken; they mean little without.
type Machine struct {
	NProc      int    `json:"nproc"`
	Kernel     string `json:"kernel"`
	CPUModel   string `json:"cpu_model"`
	MemTotal   string `json:"mem_total"`
	GoVersion  string `json:"go_version"`
	Containerd string `json:"containerd"`
	Runc       string `json:"runc"`
	Time       string `json:"time"`
}

func collectMachine(ctx context.Context, env *harness.Env) Machine {
	m := Machine{
		NProc:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Time:      time.Now().UTC().Format(time.RFC3339),
		CPUModel:  procField("/proc/cpuinfo", "model name"),
		MemTotal:  procField("/proc/meminfo", "MemTotal"),
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if v, err := env.Client.Version(ctx); err == nil {
		m.Containerd = v.Version
	}
	if out, err := exec.Command(filepath.Join(env.BinDir, "runc"), "--version").Output(); err == nil {
		m.Runc = strings.SplitN(string(out), "\n", 2)[0]
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Markdown renders the results as a report with one table.
func (r *Results) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# stockade vs containerd-shim-runc-v2 + runc\n\n")
	fmt.Fprintf(&b, "%s · %d CPUs (%s) · %s RAM · kernel %s · containerd %s · %s · %s",
		m.Time, m.NProc, m.CPUModel, m.MemTotal, m.Kernel, m.Containerd, m.Runc, m.GoVersion)
	fmt.Fprintf(&b, " · n=%d%s · took %s\n\n", r.Config.N, map[bool]string{true: " (smoke)", false: ""}[r.Config.Smoke], r.Duration)
	b.WriteString("Ratios are stockade / baseline: below 1 stockade is faster or smaller. ")
	b.WriteString("Both sides ran interleaved against one containerd and one image.\n\n")
	b.WriteString("| group | metric | unit | stockade p50 | stockade p99 | baseline | baseline p50 | baseline p99 | ratio p50 | ratio p99 |\n")
	b.WriteString("|---|---|---|--:|--:|---|--:|--:|--:|--:|\n")
	for _, x := range r.Metrics {
		sp50, sp99 := cells(x.Stockade)
		rp50, rp99 := cells(x.Runc)
		name := x.Name
		if x.Note != "" {
			name += " (" + x.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			x.Group, name, x.Unit, sp50, sp99, x.Baseline, rp50, rp99, ratioCell(x.RatioP50), ratioCell(x.RatioP99))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if errs := unavailableNotes(r.Metrics); errs != "" {
		b.WriteString("\n" + errs)
	}
	if len(r.NotMeasured) > 0 {
		b.WriteString("\n## Not measured\n\n")
		for _, nm := range r.NotMeasured {
			fmt.Fprintf(&b, "- not measured: %s — %s\n", nm.Name, nm.Reason)
		}
	}
	return b.String()
}

func cells(o Outcome) (string, string) {
	if o.Summary == nil && o.NotApplicable != "" {
		return "n/a", "n/a"
	}
	if o.Summary == nil {
		return "unavailable", "unavailable"
	}
	return num(o.Summary.P50), num(o.Summary.P99)
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ratioCell(f JSONFloat) string {
	if math.IsNaN(float64(f)) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(f))
}

// unavailableNotes lists each distinct reason a side was unavailable, once,
// so the table stays readable.
func unavailableNotes(ms []Metric) string {
	var b strings.Builder
	seen := map[string]bool{}
	for _, m := range ms {
		for _, o := range []struct {
			side string
			out  Outcome
		}{{"stockade", m.Stockade}, {m.Baseline, m.Runc}} {
			if o.out.Unavailable == "" {
				continue
			}
			line := fmt.Sprintf("- %s: unavailable (%s)", o.side, oneLine(o.out.Unavailable))
			if !seen[line] {
				seen[line] = true
				fmt.Fprintf(&b, "%s — first seen in %q\n", line, m.Name)
			}
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "## Unavailable\n\n" + b.String()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// WriteFiles writes latest.md, latest.json and latest.png into dir.
func (r *Results) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), js.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(r.Markdown()), 0o644); err != nil {
		return err
	}
	if err := r.Chart(filepath.Join(dir, "latest.png")); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}
