// Package bench compares stockade with containerd-shim-runc-v2 + runc on one
// private containerd (started through integration/harness) and one image.
// Both runtimes are measured interleaved, alternating which goes first in
// each iteration, so that drift (page cache, CPU frequency, a noisy
// neighbour) lands on both sides alike. A side that fails is reported as
// unavailable for that metric, with the error, and the run goes on.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Config sizes a run.
type Config struct {
	// N is the number of iterations per side of the sequential latency
	// metrics; the parallel and pod metrics derive their counts from it.
	N int
	// Smoke shrinks everything to a run of well under a minute.
	Smoke bool
	// Logf reports progress.
	Logf func(format string, args ...any)
	// Only, when set, names the metric groups to run (StepNames); the
	// others are skipped, for quick before/after comparisons.
	Only []string
}

// StepNames are the names Config.Only accepts, in run order.
func StepNames() []string {
	var out []string
	for _, s := range (&runner{}).steps() {
		out = append(out, s.name)
	}
	return out
}

type step struct {
	name string
	run  func(context.Context) ([]Metric, error)
}

func (b *runner) steps() []step {
	return []step{
		{"containers", b.containerLatency},
		{"pods", b.podLatency},
		{"memory", b.shimMemory},
		{"syscalls", b.syscallOverhead},
		{"denials", b.denialStreaming},
		{"userns", b.usernsStartLatency},
		{"exe", b.exeProtectionPath},
		{"record", b.recordOverhead},
		{"compat", b.compatStartLatency},
		{"phases", b.startPhases},
		{"breakdown", b.startBreakdown},
	}
}

// Outcome is one side's result for one metric.
type Outcome struct {
	Summary     *Summary `json:"summary,omitempty"`
	Unavailable string   `json:"unavailable,omitempty"`
	// NotApplicable says why a side has nothing to measure (runc streams
	// no denials); unlike Unavailable it is not a failure.
	NotApplicable string `json:"not_applicable,omitempty"`
}

// Metric is one row of the report: stockade against a baseline.
type Metric struct {
	Group    string  `json:"group"`
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	Baseline string  `json:"baseline"` // what the runc side ran as
	Stockade Outcome `json:"stockade"`
	Runc     Outcome `json:"runc"`
	// RatioP50 and RatioP99 are stockade/baseline; NaN (null in JSON) when
	// a side is unavailable.
	RatioP50 JSONFloat `json:"ratio_p50"`
	RatioP99 JSONFloat `json:"ratio_p99"`
	Note     string    `json:"note,omitempty"`
}

// NotMeasured is a metric the benchmark has a place for but cannot take yet.
type NotMeasured struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Results is the whole report.
type Results struct {
	Machine     Machine       `json:"machine"`
	Config      RunConfig     `json:"config"`
	Metrics     []Metric      `json:"metrics"`
	NotMeasured []NotMeasured `json:"not_measured"`
	// Notes are findings that are not numbers, such as which exe
	// protection path each runtime took.
	Notes    []string `json:"notes,omitempty"`
	Duration string   `json:"duration"`
}

// RunConfig is the part of Config worth recording.
type RunConfig struct {
	N     int  `json:"n"`
	Smoke bool `json:"smoke"`
}

// side is one runtime under measurement.
type side struct {
	name        string // "stockade" or "runc"
	env         *harness.Env
	unavailable error // set when the runtime cannot run here at all
}

// opTimeout bounds one container or pod operation, so that a hung shim
// costs a minute and an "unavailable", not the whole run.
const opTimeout = 60 * time.Second

// Run starts a private containerd, measures every metric and returns the
// results. It fails only when containerd itself cannot be started.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.N <= 0 {
		cfg.N = 100
	}
	for _, name := range cfg.Only {
		if !slices.Contains(StepNames(), name) {
			return nil, fmt.Errorf("-only: unknown metric group %q (want %s)", name, strings.Join(StepNames(), ", "))
		}
	}
	if cfg.Smoke {
		cfg.N = 3
	}
	began := time.Now()

	binDir, err := harness.FindBinDir()
	if err != nil {
		return nil, err
	}
	// The runc side must work for a comparison to mean anything, so the
	// harness is started with it as the default handler.
	if err := harness.Available(harness.HandlerRunc, binDir); err != nil {
		return nil, err
	}
	env, err := harness.Start(ctx, harness.Options{Handler: harness.HandlerRunc, BinDir: binDir, Logf: cfg.Logf})
	if err != nil {
		return nil, err
	}
	defer env.Close()

	stockadeEnv, err := env.ForHandler(harness.HandlerStockade)
	if err != nil {
		return nil, err
	}
	sides := []*side{
		{name: harness.HandlerStockade, env: stockadeEnv, unavailable: harness.Available(harness.HandlerStockade, binDir)},
		{name: harness.HandlerRunc, env: env},
	}
	if sides[0].unavailable != nil {
		cfg.Logf("stockade: unavailable (%v)", sides[0].unavailable)
	}

	res := &Results{Machine: collectMachine(ctx, env), Config: RunConfig{N: cfg.N, Smoke: cfg.Smoke}}
	b := &runner{cfg: cfg, env: env, sides: sides}
	for _, step := range b.steps() {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, step.name) {
			continue
		}
		ms, err := step.run(ctx)
		if err != nil {
			return nil, err
		}
		res.Metrics = append(res.Metrics, ms...)
	}
	res.Notes = b.notes
	res.NotMeasured = append(res.NotMeasured, b.notMeasured...)
	for i := range res.Metrics {
		m := &res.Metrics[i]
		m.RatioP50 = JSONFloat(ratio(m.Stockade.Summary, m.Runc.Summary, p50))
		m.RatioP99 = JSONFloat(ratio(m.Stockade.Summary, m.Runc.Summary, p99))
	}
	res.Duration = time.Since(began).Round(time.Second).String()
	return res, nil
}

// runner carries what every measurement needs.
type runner struct {
	cfg   Config
	env   *harness.Env
	sides []*side
	image client.Image // busybox in harness.Namespace, looked up once
	notes []string     // for Results.Notes
	// notMeasured is for Results.NotMeasured.
	notMeasured []NotMeasured
}

// collector gathers one side's samples for one metric; after the first
// error the side is skipped for the rest of that metric.
type collector struct {
	samples []float64
	err     error
}

func (c *collector) outcome() Outcome {
	if c.err != nil {
		return Outcome{Unavailable: c.err.Error(), Summary: nil}
	}
	return Outcome{Summary: Summarize(c.samples)}
}

// interleave runs fn n times for every side, alternating which side goes
// first, and collects what fn returns (one or more samples per call).
func (b *runner) interleave(ctx context.Context, n int, fn func(context.Context, *side) ([]float64, error)) map[string]*collector {
	return b.interleaveSides(ctx, b.sides, n, fn)
}

// interleaveSides is interleave over other sides than the two runtimes,
// such as one runtime in two configurations; collectors are keyed by name.
func (b *runner) interleaveSides(ctx context.Context, sides []*side, n int, fn func(context.Context, *side) ([]float64, error)) map[string]*collector {
	out := map[string]*collector{}
	for _, s := range sides {
		out[s.name] = &collector{err: s.unavailable}
	}
	for i := range n {
		for k := range sides {
			s := sides[(i+k)%len(sides)]
			c := out[s.name]
			if c.err != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				c.err = err
				continue
			}
			samples, err := fn(ctx, s)
			if err != nil {
				c.err = fmt.Errorf("failed after %d good samples: %w", len(c.samples), err)
				b.cfg.Logf("%s: %v", s.name, err)
				continue
			}
			c.samples = append(c.samples, samples...)
		}
	}
	return out
}

// metric builds a row from the collectors of both sides.
func metric(group, name, unit, baseline string, cs map[string]*collector) Metric {
	return Metric{
		Group:    group,
		Name:     name,
		Unit:     unit,
		Baseline: baseline,
		Stockade: cs[harness.HandlerStockade].outcome(),
		Runc:     cs[harness.HandlerRunc].outcome(),
	}
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// JSONFloat marshals NaN and infinities as null, which encoding/json refuses
// to encode as numbers.
type JSONFloat float64

// MarshalJSON implements json.Marshaler.
func (f JSONFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return fmt.Appendf(nil, "%.4f", v), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *JSONFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = JSONFloat(math.NaN())
		return nil
	}
	var v float64
	if _, err := fmt.Sscan(string(b), &v); err != nil {
		return errors.New("ratio: " + err.Error())
	}
	*f = JSONFloat(v)
	return nil
}
