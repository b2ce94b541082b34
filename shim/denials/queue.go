package denials

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/log"

	"github.com/stockade-dev/stockade/denial"
)

// gapRetry is how often gaps are retried on a sink that had failed, when no
// new record comes along to trigger it.
const gapRetry = time.Second

// lost counts what one container lost and where it belongs.
type lost struct {
	// from carries the attribution for the gap record.
	from *Record
	// denials is the sum of the counts of the lost records.
	denials uint64
	// lastSeq is the seq of the newest record lost to the queue; the gap is
	// written before the first delivered record after it.
	lastSeq uint64
}

// pipeline is the bounded queue between the notification handlers and the
// sinks. Enqueueing never blocks: the handler has already answered the
// kernel, and a slow disk must not turn into a slow workload. What does not
// fit is counted per container and written as a gap record once the sinks
// catch up, so every denial is either in a sink or in a gap's count.
type pipeline struct {
	ctx   context.Context
	q     chan *Record
	sinks []*sinkState
	stats *counters

	// mu guards seq and dropped, and makes seq order equal queue order.
	mu      sync.Mutex
	closed  bool
	seq     map[string]uint64
	dropped map[string]*lost
	// releases are containers whose sink resources can go once the
	// records queued before the release are out.
	releases []denial.Attribution
	signal   chan struct{}

	done     chan struct{}
	finished chan struct{}
	// flushedAt is when flushSinks last ran (delivery goroutine only).
	flushedAt time.Time
}

// sinkState is one sink with the gaps it still owes.
type sinkState struct {
	Sink
	gaps    map[string]*lost
	failing bool
	// loggedAt is when a failure was last logged; a flapping sink is
	// logged once per failLogEvery, not once per flap.
	loggedAt time.Time
	logged   bool
}

// failLogEvery rate-limits failure logs of one sink.
const failLogEvery = time.Minute

func newPipeline(ctx context.Context, size int, sinks []Sink, stats *counters) *pipeline {
	p := &pipeline{
		ctx:      ctx,
		q:        make(chan *Record, size),
		stats:    stats,
		seq:      make(map[string]uint64),
		dropped:  make(map[string]*lost),
		signal:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	for _, s := range sinks {
		p.sinks = append(p.sinks, &sinkState{Sink: s, gaps: make(map[string]*lost)})
	}
	go p.run()
	return p
}

// emit numbers r and queues it, or counts it as dropped if the queue is full.
func (p *pipeline) emit(r *Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq[r.ContainerID]++
	r.Seq = p.seq[r.ContainerID]
	p.stats.records.Add(1)
	if !p.closed {
		select {
		case p.q <- r:
			return
		default:
		}
	}
	p.stats.queueDropped.Add(r.Count)
	l := p.dropped[r.ContainerID]
	if l == nil {
		l = &lost{from: r}
		p.dropped[r.ContainerID] = l
	}
	l.denials += r.Count
	l.lastSeq = r.Seq
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// forget drops the sequence counter of a container that went away.
func (p *pipeline) forget(containerID string) {
	p.mu.Lock()
	delete(p.seq, containerID)
	p.mu.Unlock()
}

// hold tells the sinks that track live pods that a's pod has one more
// registered container. It runs at once: the pod must be held before its
// first record is even queued.
func (p *pipeline) hold(a denial.Attribution) {
	for _, s := range p.sinks {
		if h, ok := s.Sink.(holder); ok {
			h.Hold(a)
		}
	}
}

// release asks the sinks to free a container's resources once the queue
// has drained past its records.
func (p *pipeline) release(a denial.Attribution) {
	p.mu.Lock()
	p.releases = append(p.releases, a)
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// doReleases runs pending releases; called only with an empty queue.
func (p *pipeline) doReleases() {
	p.mu.Lock()
	rel := p.releases
	p.releases = nil
	p.mu.Unlock()
	for _, a := range rel {
		for _, s := range p.sinks {
			if r, ok := s.Sink.(Releaser); ok {
				r.Release(a)
			}
		}
	}
}

// close stops accepting records, delivers what is queued, writes the gaps
// it can and closes the sinks.
func (p *pipeline) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.finished
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	<-p.finished
}

func (p *pipeline) run() {
	defer close(p.finished)
	tick := time.NewTicker(gapRetry)
	defer tick.Stop()
	for {
		select {
		case r := <-p.q:
			p.deliver(r)
		case <-p.signal:
		case <-tick.C:
		case <-p.done:
			// closed was set before done, so nothing is added any more.
			for len(p.q) > 0 {
				p.deliver(<-p.q)
			}
			p.takeDropped(nil)
			p.writeGaps()
			for _, s := range p.sinks {
				if err := s.Close(); err != nil {
					log.G(p.ctx).WithError(err).WithField("sink", s.Name()).Warn("failed to close denial sink")
				}
			}
			return
		}
		// The sinks caught up: report what was lost while they were behind.
		if len(p.q) == 0 {
			p.flushSinks()
			p.takeDropped(nil)
			p.writeGaps()
			p.doReleases()
		}
	}
}

// flushSinks lets sinks with time-based state (LogSink's budgets) act,
// at most about once per gapRetry.
func (p *pipeline) flushSinks() {
	now := time.Now()
	if now.Sub(p.flushedAt) < gapRetry {
		return
	}
	p.flushedAt = now
	for _, s := range p.sinks {
		if f, ok := s.Sink.(flusher); ok {
			f.flush(now)
		}
	}
}

// takeDropped moves queue losses to every sink's gaps. With before set, only
// the losses of before's container that precede it in seq order move, so the
// gap lands exactly where the records went missing.
func (p *pipeline) takeDropped(before *Record) {
	p.mu.Lock()
	var moved []*lost
	if before != nil {
		if l := p.dropped[before.ContainerID]; l != nil && l.lastSeq < before.Seq {
			moved = append(moved, l)
			delete(p.dropped, before.ContainerID)
		}
	} else {
		for id, l := range p.dropped {
			moved = append(moved, l)
			delete(p.dropped, id)
		}
	}
	p.mu.Unlock()
	for _, l := range moved {
		for _, s := range p.sinks {
			s.owe(l.from, l.denials)
		}
	}
}

func (p *pipeline) deliver(r *Record) {
	p.takeDropped(r)
	line, err := json.Marshal(r)
	if err != nil {
		// Cannot happen for this struct; count it rather than lose it silently.
		for _, s := range p.sinks {
			s.owe(r, r.Count)
		}
		return
	}
	line = append(line, '\n')
	for _, s := range p.sinks {
		if g := s.gaps[r.ContainerID]; g != nil {
			if !p.writeGap(s, g) {
				s.owe(r, r.Count)
				continue
			}
		}
		if err := s.Write(r, line); err != nil {
			p.sinkFailed(s, err)
			s.owe(r, r.Count)
			continue
		}
		p.sinkOK(s)
		p.stats.delivered.Add(1)
	}
}

// writeGaps writes every gap every sink owes.
func (p *pipeline) writeGaps() {
	for _, s := range p.sinks {
		for _, g := range s.gaps {
			p.writeGap(s, g)
		}
	}
}

func (p *pipeline) writeGap(s *sinkState, g *lost) bool {
	r := gapRecord(g.from, g.denials, time.Now())
	line, err := json.Marshal(r)
	if err != nil {
		return false
	}
	if err := s.Write(r, append(line, '\n')); err != nil {
		p.sinkFailed(s, err)
		return false
	}
	p.sinkOK(s)
	delete(s.gaps, g.from.ContainerID)
	p.stats.gaps.Add(1)
	return true
}

// owe adds lost denials to the gap this sink owes for r's container.
func (s *sinkState) owe(r *Record, denials uint64) {
	g := s.gaps[r.ContainerID]
	if g == nil {
		g = &lost{from: r}
		s.gaps[r.ContainerID] = g
	}
	g.denials += denials
}

// sinkFailed logs the first failure of a run of failures: a full disk would
// otherwise add a log line per denial to the problem. The workload is never
// affected; the losses surface as gap records.
func (p *pipeline) sinkFailed(s *sinkState, err error) {
	p.stats.sinkErrors.Add(1)
	if s.failing {
		return
	}
	s.failing = true
	if now := time.Now(); now.Sub(s.loggedAt) >= failLogEvery {
		s.loggedAt, s.logged = now, true
		log.G(p.ctx).WithError(err).WithField("sink", s.Name()).Error("denial sink failing; lost records will be reported as gaps")
	}
}

func (p *pipeline) sinkOK(s *sinkState) {
	if !s.failing {
		return
	}
	s.failing = false
	if s.logged {
		s.logged = false
		log.G(p.ctx).WithField("sink", s.Name()).Info("denial sink recovered")
	}
}

// counters are the agent's statistics, updated without locks on hot paths.
type counters struct {
	notifications atomic.Uint64
	responseErrs  atomic.Uint64
	folded        atomic.Uint64
	records       atomic.Uint64
	queueDropped  atomic.Uint64
	delivered     atomic.Uint64
	sinkErrors    atomic.Uint64
	gaps          atomic.Uint64
	runtimeProbes atomic.Uint64
	bursts        atomic.Uint64
	rateLimited   atomic.Uint64
}

// Stats is a snapshot of what the agent has seen and done.
type Stats struct {
	// Notifications is the number of notified syscalls answered or attempted.
	Notifications uint64
	// ResponseErrors counts answers the kernel refused (the process had died).
	ResponseErrors uint64
	// Folded counts occurrences folded into an aggregate.
	Folded uint64
	// Records counts records produced (including ones later dropped).
	Records uint64
	// QueueDropped counts denials whose records did not fit the queue.
	QueueDropped uint64
	// Delivered counts successful record writes, summed over sinks.
	Delivered uint64
	// SinkErrors counts failed writes, summed over sinks.
	SinkErrors uint64
	// Gaps counts gap records written, summed over sinks.
	Gaps uint64
	// RuntimeProbes counts the runtime's own harmless probes answered but
	// not recorded (see isRuntimeProbe).
	RuntimeProbes uint64
	// RateLimited counts occurrences that opened a window instead of a
	// record because their container was over max_records_per_second
	// (their repeats count as Folded); each is in an aggregate's count.
	RateLimited uint64
	// Bursts counts the times a receiver moved to a thread of its own.
	Bursts uint64
	// ThreadReceivers is how many receivers are on threads of their own now.
	ThreadReceivers int
}

func (c *counters) snapshot() Stats {
	return Stats{
		Notifications:  c.notifications.Load(),
		ResponseErrors: c.responseErrs.Load(),
		Folded:         c.folded.Load(),
		Records:        c.records.Load(),
		QueueDropped:   c.queueDropped.Load(),
		Delivered:      c.delivered.Load(),
		SinkErrors:     c.sinkErrors.Load(),
		Gaps:           c.gaps.Load(),
		RuntimeProbes:  c.runtimeProbes.Load(),
		Bursts:         c.bursts.Load(),
		RateLimited:    c.rateLimited.Load(),
	}
}
