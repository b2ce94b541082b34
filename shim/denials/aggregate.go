package denials

import (
	"sync"
	"syscall"
	"time"
)

// aggKey identifies what gets folded: one syscall (by arch and number, which
// is what the kernel reports) in one container, answered one way.
type aggKey struct {
	containerID string
	arch        string
	nr          int
	errno       syscall.Errno
}

// window is the state of one aggKey while repeats are being folded.
type window struct {
	start, end time.Time
	// template is the first occurrence's record; nil until its emitter has
	// handed it over, so an aggregate can never overtake its first record.
	template *Record
	count    uint64
	last     time.Time
	// pid, comm, exe and args describe the latest occurrence.
	pid       int
	comm, exe string
	args      [6]uint64
}

// aggregator folds repeats. A workload that retries a denied syscall in a
// loop would otherwise turn every retry into a line on disk; with folding,
// the first occurrence is reported at once (an operator watching with -f
// sees it immediately) and the repeats cost one record per window.
//
// Windows roll: while repeats keep coming, each window's end emits one
// aggregate and opens the next, so a storm costs one record per window. A
// window that ends with no repeats is closed, and the next occurrence is a
// first occurrence again.
type aggregator struct {
	window time.Duration

	mu   sync.Mutex
	wins map[aggKey]*window
}

func newAggregator(w time.Duration) *aggregator {
	return &aggregator{window: w, wins: make(map[aggKey]*window)}
}

// folds reports whether an occurrence at now would be folded into an open
// window and, if so, the pid, comm and exe of the window's latest
// occurrence: a repeat from the same pid reuses them instead of reading
// /proc. It is a hint taken before the syscall is answered; observe, after
// the answer, has the final word.
func (g *aggregator) folds(k aggKey, now time.Time) (fold bool, pid int, comm, exe string) {
	if g.window <= 0 {
		return false, 0, "", ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.wins[k]
	if w == nil || (w.count == 0 && !now.Before(w.end)) {
		return false, 0, "", ""
	}
	return true, w.pid, w.comm, w.exe
}

// observe accounts one occurrence. It returns true when the occurrence opens
// a window: the caller must then emit it as a record and hand it over with
// setTemplate. Otherwise it has been folded into the open window.
func (g *aggregator) observe(k aggKey, now time.Time, pid int, comm, exe string, args [6]uint64) bool {
	if g.window <= 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.wins[k]
	if w == nil || (w.count == 0 && !now.Before(w.end)) {
		g.wins[k] = &window{start: now, end: now.Add(g.window), pid: pid, comm: comm, exe: exe, args: args}
		return true
	}
	// A repeat that arrives after the end but before the flush tick is
	// still folded; the flush is at most one tick late.
	w.count++
	w.last = now
	w.pid, w.comm, w.exe, w.args = pid, comm, exe, args
	return false
}

// setTemplate hands over the record emitted for the occurrence that opened
// the window of k.
func (g *aggregator) setTemplate(k aggKey, r *Record) {
	if g.window <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w := g.wins[k]; w != nil && w.template == nil {
		c := *r
		w.template = &c
	}
}

// due returns the aggregates of the windows that ended at or before now and
// rolls or closes those windows.
func (g *aggregator) due(now time.Time) []*Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Record
	for k, w := range g.wins {
		if now.Before(w.end) {
			continue
		}
		if w.count == 0 {
			delete(g.wins, k)
			continue
		}
		if w.template == nil {
			continue
		}
		out = append(out, w.aggregate())
		w.count = 0
		w.start = now
		w.end = now.Add(g.window)
	}
	return out
}

// forget closes every window of a container and returns what they still
// held, so nothing counted is lost when a container goes away.
func (g *aggregator) forget(containerID string) []*Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Record
	for k, w := range g.wins {
		if k.containerID != containerID {
			continue
		}
		if w.count > 0 && w.template != nil {
			out = append(out, w.aggregate())
		}
		delete(g.wins, k)
	}
	return out
}

// flushAll returns every pending aggregate (agent shutdown).
func (g *aggregator) flushAll() []*Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Record
	for k, w := range g.wins {
		if w.count > 0 && w.template != nil {
			out = append(out, w.aggregate())
		}
		delete(g.wins, k)
	}
	return out
}

// aggregate builds the record for the repeats folded so far; it carries the
// latest repeat's pid, comm, exe and arguments.
func (w *window) aggregate() *Record {
	r := *w.template
	r.Time = w.last
	r.Since = w.start
	r.Count = w.count
	r.Seq = 0
	r.Args = hexArgs(w.args)
	r.Pid, r.Comm, r.Exe = w.pid, w.comm, w.exe
	return &r
}
