package denials

import (
	"sync"
	"syscall"
	"time"
)

// maxWindowsPerContainer bounds the aggregation windows one container can
// hold open. The key names the process and the arguments (see aggKey), so a
// workload choosing distinct pids or arguments could otherwise grow the
// shim's memory without bound; past the bound, calls are folded into one
// overflow window per syscall whose aggregate says so (Record.Overflow).
const maxWindowsPerContainer = 128

// aggKey identifies what gets folded: one syscall (by arch and number, which
// is what the kernel reports) with the same arguments, made by the same
// thread, in one container, answered one way. Folding never merges two
// processes or two argument sets into a record that names only one of them:
// a decoy looping on a harmless call cannot hide another process's calls in
// its counts (issue 21, item 5). Overflow windows (overflow set, pid and
// args zero) fold whatever did not get a window of its own.
type aggKey struct {
	containerID string
	arch        string
	nr          int
	errno       syscall.Errno
	pid         int
	args        [6]uint64
	overflow    bool
}

// window is the state of one aggKey while repeats are being folded.
type window struct {
	start, end time.Time
	// span is how long the window rolls for: the aggregation window, or
	// at least a second for a window opened over the rate limit.
	span time.Duration
	// template is the first occurrence's record; nil until its emitter has
	// handed it over, so an aggregate can never overtake its first record.
	template *Record
	count    uint64
	last     time.Time
	// comm and exe are those of the window's first occurrence; repeats
	// from the same pid are answered without reading /proc again.
	comm, exe string
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
//
// rate, when > 0, bounds the records one container produces per second
// (config max_records_per_second): first occurrences and aggregates both
// spend it. Past it, a first occurrence opens a window of its own that
// starts with it counted and emits nothing yet (observe says
// obsSuppressed), and an aggregate whose window ends is held back, still
// counting, until the container has budget again. Nothing is ever dropped:
// every suppressed call is in the count of a later aggregate.
type aggregator struct {
	window time.Duration
	// limit is maxWindowsPerContainer; tests lower it.
	limit int
	rate  int

	mu   sync.Mutex
	wins map[aggKey]*window
	// open counts the non-overflow windows of each container.
	open map[string]int
	// budgets are the containers' record budgets for the current second.
	budgets map[string]*budget
}

// budget is one container's use of the rate limit in one second.
type budget struct {
	start time.Time
	used  int
}

// Results of observe.
const (
	// obsFirst: emit the occurrence as a record, then setTemplate.
	obsFirst = iota
	// obsFolded: counted in an open window; nothing to emit.
	obsFolded
	// obsSuppressed: over the rate limit; a window was opened with this
	// occurrence counted. Hand it a template (setTemplate), emit nothing.
	obsSuppressed
)

func newAggregator(w time.Duration, rate int) *aggregator {
	return &aggregator{window: w, limit: maxWindowsPerContainer, rate: rate,
		wins: make(map[aggKey]*window), open: make(map[string]int), budgets: make(map[string]*budget)}
}

// active reports whether the aggregator keeps any windows.
func (g *aggregator) active() bool { return g.window > 0 || g.rate > 0 }

// spend takes one record from the container's budget for the second that
// now falls in. Called with g.mu held.
func (g *aggregator) spend(containerID string, now time.Time) bool {
	if g.rate <= 0 {
		return true
	}
	b := g.budgets[containerID]
	if b == nil {
		b = &budget{}
		g.budgets[containerID] = b
	}
	if b.start.IsZero() || now.Sub(b.start) >= time.Second || now.Before(b.start) {
		b.start, b.used = now, 0
	}
	if b.used >= g.rate {
		return false
	}
	b.used++
	return true
}

// resolve returns the key an occurrence of k folds under: k itself, or the
// overflow key of its syscall when k has no window and its container is at
// the bound. Called with g.mu held.
func (g *aggregator) resolve(k aggKey, now time.Time) (aggKey, *window) {
	if w := g.wins[k]; w != nil && (w.count > 0 || now.Before(w.end)) {
		return k, w
	}
	if g.wins[k] == nil && g.open[k.containerID] >= g.limit {
		k = aggKey{containerID: k.containerID, arch: k.arch, nr: k.nr, errno: k.errno, overflow: true}
		if w := g.wins[k]; w != nil && (w.count > 0 || now.Before(w.end)) {
			return k, w
		}
	}
	return k, nil
}

// folds reports whether an occurrence at now would be folded into an open
// window and, if so, the comm and exe of that window's first occurrence: a
// repeat from the same pid reuses them instead of reading /proc. It is a
// hint taken before the syscall is answered; observe, after the answer, has
// the final word.
func (g *aggregator) folds(k aggKey, now time.Time) (fold bool, comm, exe string) {
	if !g.active() {
		return false, "", ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.wins[k]
	if w == nil || (w.count == 0 && !now.Before(w.end)) {
		return false, "", ""
	}
	return true, w.comm, w.exe
}

// observe accounts one occurrence. It returns obsFirst when the occurrence
// is a record of its own: the caller must emit it and hand it over with
// setTemplate under the returned key; obsFolded when it was folded into an
// open window; obsSuppressed when the container is over its rate limit: the
// caller must hand over a template without emitting it.
func (g *aggregator) observe(k aggKey, now time.Time, comm, exe string) (aggKey, int) {
	if !g.active() {
		return k, obsFirst
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	k, w := g.resolve(k, now)
	if w != nil {
		// A repeat that arrives after the end but before the flush tick is
		// still folded; the flush is at most one tick late.
		w.count++
		w.last = now
		return k, obsFolded
	}
	if !g.spend(k.containerID, now) {
		// Over the limit: the window starts with this call counted, and
		// lasts at least a second so the limit holds with folding off.
		g.openWindow(k, &window{start: now, end: now.Add(max(g.window, time.Second)), span: max(g.window, time.Second),
			count: 1, last: now, comm: comm, exe: exe})
		return k, obsSuppressed
	}
	if g.window <= 0 {
		return k, obsFirst
	}
	g.openWindow(k, &window{start: now, end: now.Add(g.window), span: g.window, comm: comm, exe: exe})
	return k, obsFirst
}

// openWindow installs w for k. Called with g.mu held.
func (g *aggregator) openWindow(k aggKey, w *window) {
	if old := g.wins[k]; old == nil && !k.overflow {
		g.open[k.containerID]++
	}
	g.wins[k] = w
}

// drop deletes the window of k. Called with g.mu held.
func (g *aggregator) drop(k aggKey) {
	delete(g.wins, k)
	if !k.overflow {
		if g.open[k.containerID]--; g.open[k.containerID] <= 0 {
			delete(g.open, k.containerID)
		}
	}
}

// setTemplate hands over the record emitted for the occurrence that opened
// the window of k.
func (g *aggregator) setTemplate(k aggKey, r *Record) {
	if !g.active() {
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
			g.drop(k)
			continue
		}
		if w.template == nil {
			continue
		}
		if !g.spend(k.containerID, now) {
			// Over the limit: keep counting, try again next second.
			w.end = now.Add(time.Second)
			continue
		}
		out = append(out, w.aggregate(k))
		w.count = 0
		w.start = now
		w.end = now.Add(w.span)
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
			out = append(out, w.aggregate(k))
		}
		g.drop(k)
	}
	delete(g.budgets, containerID)
	return out
}

// flushAll returns every pending aggregate (agent shutdown).
func (g *aggregator) flushAll() []*Record {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Record
	for k, w := range g.wins {
		if w.count > 0 && w.template != nil {
			out = append(out, w.aggregate(k))
		}
		g.drop(k)
	}
	return out
}

// aggregate builds the record for the repeats folded so far. A window's
// repeats share its pid and arguments (they are its key) and its first
// occurrence's comm and exe. An overflow window folds calls of many keys:
// its aggregate names none of them and says so.
func (w *window) aggregate(k aggKey) *Record {
	r := *w.template
	r.Time = w.last
	r.Since = w.start
	r.Count = w.count
	r.Seq = 0
	if k.overflow {
		r.Overflow = true
		r.Pid, r.Comm, r.Exe, r.Args, r.Truncated = 0, "", "", nil, nil
		r.Path, r.Capability, r.DeniedMask = "", "", ""
	}
	return &r
}
