package denials

import (
	"testing"
	"time"
)

func TestAggregatorWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	g := newAggregator(time.Second, 0)
	k := aggKey{containerID: "c", arch: "amd64", nr: 165, pid: 10}
	tmpl := &Record{ContainerID: "c", Syscall: "mount", Pid: 10, Comm: "sh", Exe: "/bin/sh", Count: 1}

	if _, first := observeFirst(g, k, at(0), "sh", "/bin/sh"); !first {
		t.Fatal("first occurrence was folded")
	}
	if f, comm, _ := g.folds(k, at(1)); !f || comm != "sh" {
		t.Error("folds() false inside an open window")
	}
	// A repeat before the template is handed over is counted but not yet
	// flushed: the aggregate must not overtake the first record.
	if _, first := observeFirst(g, k, at(100), "sh", "/bin/sh"); first {
		t.Fatal("repeat opened a new window")
	}
	if got := g.due(at(1000)); len(got) != 0 {
		t.Fatalf("flushed %d aggregates before the first record was emitted", len(got))
	}
	g.setTemplate(k, tmpl)
	observeFirst(g, k, at(1100), "sh", "/bin/sh")
	if got := g.due(at(1500)); len(got) != 1 {
		t.Fatalf("due = %d aggregates, want 1", len(got))
	} else if r := got[0]; r.Count != 2 || !r.Time.Equal(at(1100)) || !r.Since.Equal(at(0)) || r.Comm != "sh" || r.Pid != 10 {
		t.Errorf("aggregate = %+v", r)
	}
	// The window rolled at 1500: repeats keep folding, one record per window.
	if _, first := observeFirst(g, k, at(1600), "sh", "/bin/sh"); first {
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
	if f, _, _ := g.folds(k, at(3600)); f {
		t.Error("folds() true after the window closed")
	}
	if _, first := observeFirst(g, k, at(3600), "sh", "/bin/sh"); !first {
		t.Error("occurrence after a quiet window was folded")
	}
	if n := g.open["c"]; n != 1 {
		t.Errorf("open windows of c = %d, want 1", n)
	}
}

func TestAggregatorKeysAndForget(t *testing.T) {
	now := time.Now()
	g := newAggregator(time.Minute, 0)
	a := aggKey{containerID: "c1", arch: "amd64", nr: 1}
	b := aggKey{containerID: "c1", arch: "amd64", nr: 2}
	c := aggKey{containerID: "c2", arch: "amd64", nr: 1}
	x86 := aggKey{containerID: "c1", arch: "x86", nr: 1}
	pid := aggKey{containerID: "c1", arch: "amd64", nr: 1, pid: 2}
	args := aggKey{containerID: "c1", arch: "amd64", nr: 1, args: [6]uint64{0x10000000}}
	for _, k := range []aggKey{a, b, c, x86, pid, args} {
		if _, first := observeFirst(g, k, now, "sh", "/bin/sh"); !first {
			t.Errorf("%v: first occurrence folded (keys must not share windows)", k)
		}
		g.setTemplate(k, &Record{ContainerID: k.containerID, Pid: k.pid})
		observeFirst(g, k, now, "sh", "/bin/sh")
	}
	if got := g.forget("c1"); len(got) != 5 {
		t.Errorf("forget(c1) = %d aggregates, want 5", len(got))
	}
	if g.open["c1"] != 0 {
		t.Errorf("c1 still counts %d open windows", g.open["c1"])
	}
	if got := g.flushAll(); len(got) != 1 || got[0].ContainerID != "c2" {
		t.Errorf("flushAll = %+v, want c2's aggregate", got)
	}
}

// TestAggregatorDecoyCannotHideAttacker is issue 21 item 5: a decoy loop of
// unshare(0) by "nginx" made every aggregate carry comm=nginx and arg0=0,
// while 500 unshare(CLONE_NEWUSER) calls by another process disappeared
// into the counts. Each must appear with its own pid, comm, args and count.
func TestAggregatorDecoyCannotHideAttacker(t *testing.T) {
	const cloneNewUser = 0x10000000
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := newAggregator(time.Second, 0)
	decoy := aggKey{containerID: "c", arch: "amd64", nr: 272, errno: 1, pid: 10}
	evil := aggKey{containerID: "c", arch: "amd64", nr: 272, errno: 1, pid: 66, args: [6]uint64{cloneNewUser}}
	var recs []*Record
	emit := func(k aggKey, now time.Time, comm string) {
		k, first := observeFirst(g, k, now, comm, "/usr/sbin/"+comm)
		if first {
			r := &Record{ContainerID: "c", Syscall: "unshare", Pid: k.pid, Comm: comm, Args: hexArgs(k.args), Count: 1, Time: now}
			recs = append(recs, r)
			g.setTemplate(k, r)
		}
	}
	for i := 0; i < 5000; i++ {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		emit(decoy, now, "nginx")
		if i%10 == 0 {
			emit(evil, now, "evil")
		}
		recs = append(recs, g.due(now)...)
	}
	recs = append(recs, g.flushAll()...)
	counts := map[string]uint64{}
	for _, r := range recs {
		if r.Overflow {
			t.Errorf("overflow record with two keys: %+v", r)
		}
		switch {
		case r.Pid == 10 && r.Comm == "nginx" && r.Args[0] == "0x0":
			counts["decoy"] += r.Count
		case r.Pid == 66 && r.Comm == "evil" && r.Args[0] == "0x10000000":
			counts["evil"] += r.Count
		default:
			t.Errorf("record names a mix: pid %d comm %q args %v", r.Pid, r.Comm, r.Args)
		}
	}
	if counts["decoy"] != 5000 || counts["evil"] != 500 {
		t.Errorf("counts = %v, want decoy 5000 and evil 500, each in its own records", counts)
	}
}

// TestAggregatorBoundedKeys: distinct keys cannot grow memory without
// bound; past the bound calls fold into an overflow aggregate that counts
// them and says so, never silently.
func TestAggregatorBoundedKeys(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := newAggregator(time.Second, 0)
	g.limit = 4
	var recs []*Record
	for i := 0; i < 100; i++ {
		k := aggKey{containerID: "c", arch: "amd64", nr: 272, pid: 1000 + i}
		k, first := observeFirst(g, k, now, "w", "/w")
		if first {
			r := &Record{ContainerID: "c", Pid: k.pid, Comm: "w", Exe: "/w", Args: hexArgs(k.args), Count: 1}
			recs = append(recs, r)
			g.setTemplate(k, r)
		}
	}
	if len(g.wins) != 5 || g.open["c"] != 4 {
		t.Fatalf("%d windows (%d counted), want 4 keyed + 1 overflow", len(g.wins), g.open["c"])
	}
	recs = append(recs, g.flushAll()...)
	var total uint64
	var overflow *Record
	for _, r := range recs {
		total += r.Count
		if r.Overflow {
			overflow = r
		}
	}
	if total != 100 {
		t.Errorf("records count %d calls, want 100", total)
	}
	if overflow == nil || overflow.Count != 95 || overflow.Pid != 0 || overflow.Comm != "" || overflow.Exe != "" || overflow.Args != nil {
		t.Errorf("overflow aggregate = %+v, want count 95 naming nobody", overflow)
	}
	// Windows that close free their slots.
	if got := g.due(now.Add(2 * time.Second)); len(got) != 0 || len(g.wins) != 0 || len(g.open) != 0 {
		t.Errorf("after closing: %d aggregates, %d windows, open %v", len(got), len(g.wins), g.open)
	}
}

func TestAggregatorDisabled(t *testing.T) {
	g := newAggregator(0, 0)
	k := aggKey{containerID: "c", arch: "amd64", nr: 1}
	for i := 0; i < 3; i++ {
		f, _, _ := g.folds(k, time.Now())
		if _, first := observeFirst(g, k, time.Now(), "sh", "/bin/sh"); !first || f {
			t.Fatal("window 0 must report every occurrence")
		}
	}
	if len(g.due(time.Now().Add(time.Hour))) != 0 {
		t.Error("window 0 produced aggregates")
	}
}

// observeFirst is observe reporting whether the occurrence is a record of
// its own.
func observeFirst(g *aggregator, k aggKey, now time.Time, comm, exe string) (aggKey, bool) {
	k, r := g.observe(k, now, comm, exe)
	return k, r == obsFirst
}
