package denials

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
)

func rec(container string, count uint64) *Record {
	r := &Record{Time: time.Now(), ContainerID: container, Container: container, Namespace: "ns", Pod: "p", PodUID: "u", Syscall: "mount", Count: count}
	return r
}

func TestPipelineQueueFullBecomesGapInPlace(t *testing.T) {
	var st counters
	sink := &memSink{gate: make(chan struct{})}
	p := newPipeline(context.Background(), 2, []Sink{sink}, &st)

	p.emit(rec("c1", 1)) // taken by the consumer, which blocks in the sink
	waitFor(t, "consumer busy", func() bool { return len(p.q) == 0 })
	p.emit(rec("c1", 1)) // queued
	p.emit(rec("c1", 1)) // queued
	for i := 0; i < 5; i++ {
		p.emit(rec("c1", 3)) // dropped: 15 denials
	}
	p.emit(rec("c2", 7)) // dropped for another container
	close(sink.gate)     // the sink catches up
	waitFor(t, "records and gaps", func() bool { return len(sink.records()) == 5 })
	p.emit(rec("c1", 1))
	p.close()

	recs := sink.records()
	var kinds []string
	for _, r := range recs {
		kinds = append(kinds, fmt.Sprintf("%s:%s:%d:%d:%d", r.ContainerID, r.Type, r.Seq, r.Count, r.Dropped))
	}
	// c1: seq 1-3 delivered, 4-8 lost, 9 delivered; the gap sits where the
	// loss happened, before seq 9. c2's gap comes when the queue drains.
	want := []string{"c1::1:1:0", "c1::2:1:0", "c1::3:1:0"}
	for i, w := range want {
		if kinds[i] != w {
			t.Fatalf("records = %v, want prefix %v", kinds, want)
		}
	}
	got := map[string]uint64{}
	for _, r := range recs {
		if r.Type == TypeGap {
			got[r.ContainerID] += r.Dropped
		}
	}
	if got["c1"] != 15 || got["c2"] != 7 {
		t.Errorf("gaps = %v, want c1:15 c2:7 (%v)", got, kinds)
	}
	last := recs[len(recs)-1]
	if last.Seq != 9 || last.ContainerID != "c1" {
		t.Errorf("last record = %v, want c1 seq 9", kinds)
	}
	if delivered, gapped := account(recs); delivered+gapped != 1+1+1+15+7+1 {
		t.Errorf("accounted %d+%d, want 26", delivered, gapped)
	}
	if s := st.snapshot(); s.QueueDropped != 22 {
		t.Errorf("queue dropped = %d, want 22", s.QueueDropped)
	}
	if !sink.closed {
		t.Error("sink not closed")
	}
}

func TestPipelineSinkErrorsBecomeGaps(t *testing.T) {
	var st counters
	var failing atomic.Bool
	failing.Store(true)
	sink := &memSink{fail: func(*Record) error {
		if failing.Load() {
			return errFull
		}
		return nil
	}}
	ok := &memSink{}
	p := newPipeline(context.Background(), 16, []Sink{sink, ok}, &st)
	p.emit(rec("c1", 1))
	p.emit(rec("c1", 4))
	waitFor(t, "other sink unaffected", func() bool { return len(ok.records()) == 2 })
	failing.Store(false)
	p.emit(rec("c1", 1))
	p.close()

	recs := sink.records()
	if len(recs) != 2 || recs[0].Type != TypeGap || recs[0].Dropped != 5 || recs[1].Seq != 3 {
		t.Fatalf("failing sink got %+v, want gap(5) then seq 3", recs)
	}
	if len(ok.records()) != 3 {
		t.Errorf("healthy sink got %d records, want 3 and no gap", len(ok.records()))
	}
	if g := recs[0]; g.Namespace != "ns" || g.Pod != "p" || g.Container != "c1" || g.Time.IsZero() {
		t.Errorf("gap record lacks attribution: %+v", g)
	}
	if s := st.snapshot(); s.SinkErrors < 2 || s.Gaps != 1 {
		t.Errorf("stats = %+v", s)
	}
}

// A sink that never recovers still gets its gap retried; a sink that
// recovers with no new records gets its gap on the retry tick.
func TestPipelineGapRetriedWithoutNewRecords(t *testing.T) {
	var st counters
	var failing atomic.Bool
	failing.Store(true)
	sink := &memSink{fail: func(*Record) error {
		if failing.Load() {
			return errFull
		}
		return nil
	}}
	p := newPipeline(context.Background(), 16, []Sink{sink}, &st)
	defer p.close()
	p.emit(rec("c1", 2))
	waitFor(t, "failed write", func() bool { return st.sinkErrors.Load() >= 1 })
	failing.Store(false)
	waitFor(t, "gap on retry", func() bool { return len(sink.records()) == 1 })
	if r := sink.records()[0]; r.Type != TypeGap || r.Dropped != 2 {
		t.Errorf("got %+v", r)
	}
}

func TestPipelineEmitAfterCloseIsCounted(t *testing.T) {
	var st counters
	p := newPipeline(context.Background(), 4, []Sink{&memSink{}}, &st)
	p.close()
	p.close() // idempotent
	p.emit(rec("c1", 3))
	if st.queueDropped.Load() != 3 {
		t.Errorf("dropped = %d, want 3", st.queueDropped.Load())
	}
}

// TestStormFake drives 200k notifications through the agent with a tiny
// queue and a slow sink: whatever happens, every denial is in a record or in
// a gap record.
func TestStormFake(t *testing.T) {
	const n = 200000
	cfg := testConfig(t)
	cfg.QueueSize = 64
	cfg.AggregateWindow = "0"
	var writes atomic.Int64
	sink := &memSink{fail: func(*Record) error {
		// Slow, and failing now and then, as a struggling disk would be.
		if writes.Add(1)%1000 == 0 {
			return errFull
		}
		for i := 0; i < 200; i++ {
			_ = i * i
		}
		return nil
	}}
	a := newTestAgent(t, cfg, sink)
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	_ = a.Register("c2", testAttr, denial.ModeComplain, "p")
	start := time.Now()
	var srcs []*fakeSource
	for _, id := range []string{"c1", "c2"} {
		src := newFakeSource()
		srcs = append(srcs, src)
		a.serve(a.registration(id), src)
	}
	for i := 0; i < n; i++ {
		srcs[i%2].ch <- note(uint64(i), 10+i%7, 165+i%3, "mount")
	}
	for _, s := range srcs {
		close(s.ch)
	}
	waitFor(t, "all notifications handled", func() bool { return a.Stats().Notifications == n })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("storm took %v", d)
	}
	delivered, gapped := account(sink.records())
	if delivered+gapped != n {
		t.Errorf("delivered %d + gapped %d = %d, want %d", delivered, gapped, delivered+gapped, n)
	}
	s := a.Stats()
	t.Logf("delivered %d, gapped %d, stats %+v", delivered, gapped, s)
	if s.Notifications != n {
		t.Errorf("notifications = %d, want %d", s.Notifications, n)
	}
}
