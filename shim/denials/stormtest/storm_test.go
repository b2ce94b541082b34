//go:build cgo && seccomp

package stormtest

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/shim/denials/notifytest"
)

// A folded storm allocates nothing per notification: raw ioctls on owned
// buffers, names from caches, no record for a repeat.
func TestFoldedStormAllocations(t *testing.T) {
	notifytest.Require(t)
	const n = 50_000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	r, err := Storm(n, StormOptions{})
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Lost != 0 {
		t.Fatalf("lost %d", r.Lost)
	}
	// The storm's own set-up (agent, sinks, the timing slice, the
	// accounting read of the sink) is a few thousand allocations at most;
	// one per notification would be 50,000.
	allocs := m1.Mallocs - m0.Mallocs
	t.Logf("%d allocations for %d denials (%.3f each)", allocs, n, float64(allocs)/n)
	if allocs > n/10 {
		t.Errorf("%d allocations for %d denials: something allocates per notification", allocs, n)
	}
}

func TestStormReal(t *testing.T) {
	notifytest.Require(t)
	for _, opt := range []StormOptions{
		{}, // node defaults: folded
		{Window: -1, QueueSize: 64, RecordsPerSecond: -1},    // every denial a record, tiny queue: gaps
		{Window: -1, RecordsPerSecond: 100},                  // no folding, but the rate limit
		{Mode: denial.ModeComplain, Window: 0, QueueSize: 0}, // complain: CONTINUE
		// Every way of receiving, with and without SYNC_WAKE_UP.
		{Receiver: "poller"},
		{Receiver: "thread"},
		{Receiver: "thread", NoSyncWakeUp: true},
		{Receiver: "adaptive", NoSyncWakeUp: true},
		// Every denial a record, through the thread receiver.
		{Window: -1, Receiver: "thread", RecordsPerSecond: -1},
	} {
		t.Run(fmt.Sprintf("window=%v,queue=%d,mode=%s,receiver=%s,nosync=%v", opt.Window, opt.QueueSize, opt.Mode, opt.Receiver, opt.NoSyncWakeUp), func(t *testing.T) {
			r, err := Storm(200000, opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%.0f denials/s, %v per denied syscall (p50 %v, p99 %v; baseline %v), agent CPU %v per 100k, delivered %d, gapped %d, stats %+v",
				r.Rate, r.Latency, r.P50, r.P99, r.Baseline, r.CPUPer100k(), r.Delivered, r.Gapped, r.Stats)
			if r.Lost != 0 || r.Wrong != 0 || r.Delivered+r.Gapped < 200000 {
				t.Errorf("lost %d, wrong %d, accounted %d", r.Lost, r.Wrong, r.Delivered+r.Gapped)
			}
		})
	}
}

// BenchmarkDenialRoundTrip measures what a denied syscall costs the
// workload with the agent answering: ns/denial is the mean round trip,
// added-ns/denial subtracts the same syscall without a filter. "folded" is
// a hot loop with the node defaults, "unfolded" writes a record per denial,
// "isolated" pauses between denials so each meets an idle agent.
func BenchmarkDenialRoundTrip(b *testing.B) {
	notifytest.Require(b)
	for _, bc := range []struct {
		name string
		opt  StormOptions
	}{
		{"folded", StormOptions{}},
		{"unfolded", StormOptions{Window: -1}},
		{"isolated", StormOptions{Pause: 100 * time.Microsecond}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := Storm(b.N, bc.opt)
			if err != nil {
				b.Fatal(err)
			}
			if r.Lost != 0 {
				b.Errorf("%d denials unaccounted", r.Lost)
			}
			b.ReportMetric(float64(r.Latency.Nanoseconds()), "ns/denial")
			b.ReportMetric(float64((r.Latency - r.Baseline).Nanoseconds()), "added-ns/denial")
			b.ReportMetric(float64(r.P50.Nanoseconds()), "p50-ns/denial")
			b.ReportMetric(float64(r.P99.Nanoseconds()), "p99-ns/denial")
			b.ReportMetric(float64(r.CPUPer100k().Microseconds()), "agent-cpu-µs/100k")
			b.ReportMetric(r.Rate, "denials/s")
		})
	}
}
