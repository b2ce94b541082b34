package denials

import (
	"testing"
	"time"
)

func TestAggregatorWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	g := newAggregator(time.Second)
	k := aggKey{containerID: "c", arch: "amd64", nr: 165}
	tmpl := &Record{ContainerID: "c", Syscall: "mount", Pid: 10, Comm: "sh", Exe: "/bin/sh", Count: 1}

	if !g.observe(k, at(0), 10, "sh", "/bin/sh", [6]uint64{}) {
		t.Fatal("first occurrence was folded")
	}
	if f, pid, comm, _ := g.folds(k, at(1)); !f || pid != 10 || comm != "sh" {
		t.Error("folds() false inside an open window")
	}
	// A repeat before the template is handed over is counted but not yet
	// flushed: the aggregate must not overtake the first record.
	if g.observe(k, at(100), 10, "sh", "/bin/sh", [6]uint64{1}) {
		t.Fatal("repeat opened a new window")
	}
	if got := g.due(at(1000)); len(got) != 0 {
		t.Fatalf("flushed %d aggregates before the first record was emitted", len(got))
	}
	g.setTemplate(k, tmpl)
	g.observe(k, at(1100), 10, "sh", "/bin/sh", [6]uint64{2})
	if got := g.due(at(1500)); len(got) != 1 {
		t.Fatalf("due = %d aggregates, want 1", len(got))
	} else if r := got[0]; r.Count != 2 || !r.Time.Equal(at(1100)) || !r.Since.Equal(at(0)) || r.Comm != "sh" || r.Args[0] != "0x2" {
		t.Errorf("aggregate = %+v", r)
	}
	// The window rolled at 1500: repeats keep folding, one record per window.
	if g.observe(k, at(1600), 10, "sh", "/bin/sh", [6]uint64{}) {
		t.Error("repeat after a roll opened a new window")
	}
	if got := g.due(at(2000)); len(got) != 0 {
		t.Errorf("flushed before the rolled window ended: %+v", got)
	}
	if got := g.due(at(2500)); len(got) != 1 || got[0].Count != 1 || !got[0].Since.Equal(at(1500)) {
		t.Errorf("rolled aggregate = %+v", got)
	}
	// A window with no repeats closes; the next occurrence is a first again.
	if got := g.due(at(3500)); len(got) != 0 {
		t.Errorf("empty window produced %+v", got)
	}
	if f, _, _, _ := g.folds(k, at(3600)); f {
		t.Error("folds() true after the window closed")
	}
	if !g.observe(k, at(3600), 10, "sh", "/bin/sh", [6]uint64{}) {
		t.Error("occurrence after a quiet window was folded")
	}
}

func TestAggregatorKeysAndForget(t *testing.T) {
	now := time.Now()
	g := newAggregator(time.Minute)
	a := aggKey{"c1", "amd64", 1, 0}
	b := aggKey{"c1", "amd64", 2, 0}
	c := aggKey{"c2", "amd64", 1, 0}
	x86 := aggKey{"c1", "x86", 1, 0}
	for _, k := range []aggKey{a, b, c, x86} {
		if !g.observe(k, now, 1, "sh", "/bin/sh", [6]uint64{}) {
			t.Errorf("%v: first occurrence folded (keys must not share windows)", k)
		}
		g.setTemplate(k, &Record{ContainerID: k.containerID, Pid: 1})
		g.observe(k, now, 1, "sh", "/bin/sh", [6]uint64{})
	}
	if got := g.forget("c1"); len(got) != 3 {
		t.Errorf("forget(c1) = %d aggregates, want 3", len(got))
	}
	if got := g.flushAll(); len(got) != 1 || got[0].ContainerID != "c2" {
		t.Errorf("flushAll = %+v, want c2's aggregate", got)
	}
}

func TestAggregatorDisabled(t *testing.T) {
	g := newAggregator(0)
	k := aggKey{"c", "amd64", 1, 0}
	for i := 0; i < 3; i++ {
		if f, _, _, _ := g.folds(k, time.Now()); !g.observe(k, time.Now(), 1, "sh", "/bin/sh", [6]uint64{}) || f {
			t.Fatal("window 0 must report every occurrence")
		}
	}
	if len(g.due(time.Now().Add(time.Hour))) != 0 {
		t.Error("window 0 produced aggregates")
	}
}
