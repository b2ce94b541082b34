package denials

import (
	"sync"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
)

// A storm of distinct calls with folding off writes at most
// max_records_per_second lines per second, and every call is counted.
func TestAgentRateLimitBoundsLinesCountsAll(t *testing.T) {
	const (
		n    = 1000
		rate = 50
	)
	cfg := testConfig(t)
	cfg.AggregateWindow = "0"
	cfg.MaxRecordsPerSecond = rate
	sink := &memSink{}
	var mu sync.Mutex
	clock := time.Unix(5000, 0)
	a := newTestAgentWith(t, cfg, []Sink{sink}, withClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }))
	_ = a.Register("c1", testAttr, denial.ModeEnforce, "p")
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	for i := range n {
		nt := note(uint64(i+1), 100+i%3, 165, "mount")
		nt.args[2] = uint64(i) // every call distinct: nothing folds by key
		src.ch <- nt
	}
	waitFor(t, "every call handled", func() bool {
		s := a.Stats()
		return s.Records+s.RateLimited+s.Folded >= n
	})
	pending := func() int {
		a.agg.mu.Lock()
		defer a.agg.mu.Unlock()
		c := 0
		for _, w := range a.agg.wins {
			c += int(w.count)
		}
		return c
	}
	// Within the first second only the budget's worth goes out, however
	// long we wait: the clock does not move.
	waitFor(t, "the first second's records", func() bool { return len(sink.records()) >= rate })
	if s := a.Stats(); s.Records != rate {
		t.Fatalf("records in the first second = %d, want %d", s.Records, rate)
	}
	for sec := 1; pending() > 0; sec++ {
		if sec > n {
			t.Fatalf("still %d calls pending after %d s", pending(), sec)
		}
		before := pending()
		mu.Lock()
		clock = clock.Add(time.Second)
		mu.Unlock()
		waitFor(t, "the next second's aggregates", func() bool { return pending() < before })
	}
	close(src.ch)
	_ = a.Close()
	recs := sink.records()
	if d, g := account(recs); d+g != n {
		t.Errorf("accounted %d + %d, want %d", d, g, n)
	}
	// Aggregates of suppressed calls keep their attribution (one pid and
	// argument set each) unless they overflowed the window bound.
	for _, r := range recs {
		if r.Count > 1 && !r.Overflow && (r.Comm == "" || r.Pid == 0) {
			t.Errorf("aggregate lost its attribution: %+v", r)
		}
	}
	if s := a.Stats(); s.RateLimited == 0 {
		t.Errorf("stats = %+v, want rate-limited calls", s)
	}
}

// The aggregator's budget: per container and second, first occurrences and
// aggregates together; the rest waits in windows and is counted.
func TestAggregatorRateLimit(t *testing.T) {
	const rate = 50
	g := newAggregator(0, rate)
	t0 := time.Unix(100, 0)
	var firsts, suppressed, folded int
	for i := range 1000 {
		k := aggKey{containerID: "c", arch: "amd64", nr: 165, pid: 1 + i%7, args: [6]uint64{uint64(i % 300)}}
		k, res := g.observe(k, t0, "sh", "/bin/sh")
		switch res {
		case obsFirst:
			firsts++
		case obsSuppressed:
			suppressed++
			g.setTemplate(k, &Record{ContainerID: "c", Pid: k.pid, Comm: "sh", Count: 1})
		case obsFolded:
			folded++
		}
	}
	if firsts != rate {
		t.Errorf("first occurrences = %d, want %d", firsts, rate)
	}
	// Another container has its own budget.
	if _, res := g.observe(aggKey{containerID: "other", nr: 1}, t0, "", ""); res != obsFirst {
		t.Errorf("other container's first call = %d, want a record", res)
	}
	var counted uint64
	for sec := 1; ; sec++ {
		out := g.due(t0.Add(time.Duration(sec) * time.Second))
		if len(out) > rate {
			t.Fatalf("second %d: %d aggregates, want at most %d", sec, len(out), rate)
		}
		for _, r := range out {
			counted += r.Count
		}
		if len(g.wins) == 0 || sec > 100 {
			break
		}
	}
	if got := uint64(firsts) + counted; got != 1000 {
		t.Errorf("firsts %d + aggregated %d = %d, want 1000 (suppressed %d, folded %d)", firsts, counted, got, suppressed, folded)
	}
	if len(g.wins) != 0 {
		t.Errorf("%d windows left", len(g.wins))
	}
}
