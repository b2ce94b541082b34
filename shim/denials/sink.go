package denials

import (
	"context"
	"fmt"
	"log/syslog"
	"net"
	"time"

	"github.com/containerd/log"

	"github.com/stockade-dev/stockade/denial"
)

// Sink receives records, one at a time, from a single goroutine. line is the
// record's JSON encoding with a trailing newline, computed once for all sinks.
//
// A sink never blocks the workload: it is only ever called from the agent's
// delivery goroutine, behind the bounded queue. When Write fails the record
// is counted as dropped and reported later as a gap record on that sink.
type Sink interface {
	// Name identifies the sink in the shim log.
	Name() string
	Write(r *Record, line []byte) error
	Close() error
}

// Releaser is implemented by sinks that hold resources per container (open
// files); the agent calls Release when a container is unregistered.
type Releaser interface {
	Release(a denial.Attribution)
}

// flusher is implemented by sinks with time-based state; the pipeline
// calls flush about once a second from the delivery goroutine.
type flusher interface {
	flush(now time.Time)
}

// logPeriod is the interval LogSink's per-container budget applies to.
const logPeriod = time.Minute

// LogSink writes a warning per record to the shim log, at most perPeriod
// per container per logPeriod. The shim log ends in containerd's log or the
// journal, which nothing rotates on the shim's behalf: without a bound a
// workload looping over distinct denied calls with a 4 KiB exe path wrote
// 2.4 GB an hour into it. What exceeds the budget is counted exactly and
// reported in one line per container and period ("suppressed N denial
// warnings in the last 60s"); the sink (file, syslog, socket) still gets
// every record.
type LogSink struct {
	ctx       context.Context
	perPeriod int
	now       func() time.Time

	// budgets is only used from the delivery goroutine (Write, flush,
	// Release and Close all run there).
	budgets map[denial.Attribution]*logBudget
}

// logBudget is one container's use of its budget in the current period.
type logBudget struct {
	start       time.Time
	containerID string
	logged      int
	// suppressed counts records not logged, denials the syscalls they
	// stood for (an aggregate stands for many).
	suppressed, denials uint64
}

// NewLogSink logs through log.G(ctx), at most perMinute warnings per
// container per minute.
func NewLogSink(ctx context.Context, perMinute int) *LogSink {
	return &LogSink{ctx: ctx, perPeriod: perMinute, now: time.Now, budgets: make(map[denial.Attribution]*logBudget)}
}

// Name implements Sink.
func (s *LogSink) Name() string { return "log" }

func (s *LogSink) entry(a denial.Attribution, containerID string) *log.Entry {
	e := log.G(s.ctx).WithFields(log.Fields{
		"namespace": a.Namespace,
		"pod":       a.Pod,
		"container": a.Container,
	})
	if containerID != "" {
		e = e.WithField("container_id", containerID)
	}
	return e
}

// Write implements Sink.
func (s *LogSink) Write(r *Record, _ []byte) error {
	now := s.now()
	a := r.attribution()
	b := s.budgets[a]
	if b != nil && now.Sub(b.start) >= logPeriod {
		s.report(a, b, now)
		b = nil
	}
	if b == nil {
		b = &logBudget{start: now}
		s.budgets[a] = b
	}
	b.containerID = r.ContainerID
	if b.logged >= s.perPeriod {
		b.suppressed++
		b.denials += r.Count + r.Dropped
		return nil
	}
	b.logged++
	e := s.entry(a, r.ContainerID)
	if r.Type == TypeGap {
		e.WithField("dropped", r.Dropped).Warn("denial records lost")
		return nil
	}
	f := log.Fields{
		"syscall": r.Syscall,
		"action":  r.Action,
		"mode":    r.Mode,
		"count":   r.Count,
		"pid":     r.Pid,
		"comm":    r.Comm,
		"exe":     r.Exe,
	}
	if r.Overflow {
		f["overflow"] = true
	}
	if len(r.Truncated) > 0 {
		f["truncated"] = r.Truncated
	}
	e.WithFields(f).Warn("syscall denied")
	return nil
}

// report logs what a budget suppressed, if anything.
func (s *LogSink) report(a denial.Attribution, b *logBudget, now time.Time) {
	if b.suppressed == 0 {
		return
	}
	over := now.Sub(b.start).Round(time.Second)
	s.entry(a, b.containerID).WithFields(log.Fields{
		"suppressed": b.suppressed,
		"denials":    b.denials,
	}).Warnf("suppressed %d denial warnings in the last %s (%d denials; every record is in the sink)", b.suppressed, over, b.denials)
	b.suppressed, b.denials = 0, 0
}

// flush implements flusher: budgets whose period is over report what they
// suppressed and are forgotten, so idle containers cost no memory.
func (s *LogSink) flush(now time.Time) {
	for a, b := range s.budgets {
		if now.Sub(b.start) >= logPeriod {
			s.report(a, b, now)
			delete(s.budgets, a)
		}
	}
}

// Release implements Releaser: a container going away reports what its
// budget suppressed now rather than never.
func (s *LogSink) Release(a denial.Attribution) {
	if b := s.budgets[a]; b != nil {
		s.report(a, b, s.now())
		delete(s.budgets, a)
	}
}

// Close implements Sink.
func (s *LogSink) Close() error {
	now := s.now()
	for a, b := range s.budgets {
		s.report(a, b, now)
		delete(s.budgets, a)
	}
	return nil
}

// SyslogSink sends every record as one syslog message (facility daemon,
// severity warning) to the local syslog daemon. It connects lazily and, if
// the daemon is absent, returns errors (which become gap records) rather
// than failing agent start-up.
type SyslogSink struct {
	w *syslog.Writer
}

// NewSyslogSink returns a sink for the local syslog daemon.
func NewSyslogSink() *SyslogSink { return &SyslogSink{} }

// Name implements Sink.
func (s *SyslogSink) Name() string { return "syslog" }

// Write implements Sink.
func (s *SyslogSink) Write(_ *Record, line []byte) error {
	if s.w == nil {
		w, err := syslog.New(syslog.LOG_WARNING|syslog.LOG_DAEMON, "stockade")
		if err != nil {
			return fmt.Errorf("failed to connect to syslog: %w", err)
		}
		s.w = w
	}
	if err := s.w.Warning(string(line[:len(line)-1])); err != nil {
		return fmt.Errorf("failed to write to syslog: %w", err)
	}
	return nil
}

// Close implements Sink.
func (s *SyslogSink) Close() error {
	if s.w == nil {
		return nil
	}
	return s.w.Close()
}

// datagramTimeout bounds how long a stalled node agent can hold up delivery.
const datagramTimeout = 50 * time.Millisecond

// DatagramSink sends every record as one JSON datagram to a unix datagram
// socket of a node agent. Datagrams keep record boundaries without framing
// and never leave a half-written record behind.
type DatagramSink struct {
	path string
	c    *net.UnixConn
}

// NewDatagramSink returns a sink for the socket at path (node config only).
func NewDatagramSink(path string) *DatagramSink { return &DatagramSink{path: path} }

// Name implements Sink.
func (s *DatagramSink) Name() string { return "socket " + s.path }

// Write implements Sink.
func (s *DatagramSink) Write(_ *Record, line []byte) error {
	if s.c == nil {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("failed to connect to %s: %w", s.path, err)
		}
		s.c = c
	}
	_ = s.c.SetWriteDeadline(time.Now().Add(datagramTimeout))
	if _, err := s.c.Write(line); err != nil {
		// Reconnect next time: the agent may have restarted on a new socket.
		_ = s.c.Close()
		s.c = nil
		return fmt.Errorf("failed to send to %s: %w", s.path, err)
	}
	return nil
}

// Close implements Sink.
func (s *DatagramSink) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}
