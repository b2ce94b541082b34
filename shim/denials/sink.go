package denials

import (
	"context"
	"fmt"
	"log/syslog"
	"net"
	"time"

	"github.com/containerd/log"
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
	Release(a Attribution)
}

// LogSink writes one warning per record to the shim log. Repeats are folded
// before they get here, so a retry loop costs one line per window.
type LogSink struct {
	ctx context.Context
}

// NewLogSink logs through log.G(ctx).
func NewLogSink(ctx context.Context) *LogSink { return &LogSink{ctx: ctx} }

// Name implements Sink.
func (s *LogSink) Name() string { return "log" }

// Write implements Sink.
func (s *LogSink) Write(r *Record, _ []byte) error {
	e := log.G(s.ctx).WithFields(log.Fields{
		"namespace":    r.Namespace,
		"pod":          r.Pod,
		"container":    r.Container,
		"container_id": r.ContainerID,
	})
	if r.Type == TypeGap {
		e.WithField("dropped", r.Dropped).Warn("denial records lost")
		return nil
	}
	e.WithFields(log.Fields{
		"syscall": r.Syscall,
		"action":  r.Action,
		"mode":    r.Mode,
		"count":   r.Count,
		"pid":     r.Pid,
		"comm":    r.Comm,
		"exe":     r.Exe,
	}).Warn("syscall denied")
	return nil
}

// Close implements Sink.
func (s *LogSink) Close() error { return nil }

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
