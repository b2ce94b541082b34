package config

import (
	"fmt"
	"path/filepath"
	"time"
)

// Denials is the [denials] section. Owned by the denial-streaming feature.
//
// Every key here is node configuration: nothing a pod or an image carries can
// choose a sink, a path or a limit, because the sink writes as root on the host.
type Denials struct {
	// Enabled streams seccomp denials to the sink.
	Enabled bool `toml:"enabled"`
	// Dir is the root of the per-pod JSON-lines sink
	// (<dir>/<namespace>_<pod>_<pod-uid>/<container>.log).
	Dir string `toml:"dir"`
	// MaxFileBytes bounds one container's log file before it is rotated,
	// like kubelet's containerLogMaxSize.
	MaxFileBytes int64 `toml:"max_file_bytes"`
	// MaxFiles is how many files (the live one plus rotated ones) are kept per
	// container, like kubelet's containerLogMaxFiles.
	MaxFiles int `toml:"max_files"`
	// AggregateWindow folds repeats of one syscall in one container into a
	// single record per window (Go duration, "0" disables folding).
	AggregateWindow string `toml:"aggregate_window"`
	// QueueSize bounds the records waiting for the sinks; past it records are
	// dropped, counted, and reported as gap records.
	QueueSize int `toml:"queue_size"`
	// Syslog additionally sends every record to the local syslog daemon.
	Syslog bool `toml:"syslog"`
	// Socket, when set, is a unix datagram socket of a node agent that
	// receives every record as one JSON datagram.
	Socket string `toml:"socket"`
	// Retention is how long a pod's directory is kept after the pod is gone
	// (its last container unregistered, or, if its shim died, its last
	// record) before a shim's sweep removes it (Go duration; "0" keeps
	// directories until an operator removes them).
	Retention string `toml:"retention"`
	// MaxTotalBytes caps the whole sink on the node: past it, rotated files
	// are removed oldest first, then the directories of pods that are gone.
	// 0 means no cap.
	MaxTotalBytes int64 `toml:"max_total_bytes"`
	// LogPerMinute bounds the warnings one container's denials write to the
	// shim log (containerd's log or the journal) per minute; the rest are
	// counted and summed up in one line. 0 writes none.
	LogPerMinute int `toml:"log_per_minute"`
	// MaxRecordsPerSecond bounds the records (lines) one container's
	// denials produce per second, first occurrences and aggregates alike.
	// Past it, calls are counted into aggregates that are written once
	// the container has budget again: the line rate stays bounded and
	// every denial is still counted. 0 means no limit.
	MaxRecordsPerSecond int `toml:"max_records_per_second"`
}

// Denials defaults, exported so documentation and tests agree with the code.
const (
	DefaultDenialsDir           = "/var/log/stockade"
	DefaultDenialsMaxFileBytes  = 10 << 20
	DefaultDenialsMaxFiles      = 5
	DefaultDenialsWindow        = "1s"
	DefaultDenialsQueueSize     = 8192
	DefaultDenialsRetention     = "24h"
	DefaultDenialsMaxTotal      = 1 << 30
	DefaultDenialsLogPerMinute  = 10
	DefaultDenialsRecordsPerSec = 1000
)

// Limits that keep a typo (an extra zero) from turning the sink into a
// memory or disk hazard on the node.
const (
	minDenialsFileBytes = 4 << 10
	maxDenialsQueueSize = 1 << 20
	maxDenialsWindow    = time.Hour
	maxDenialsFiles     = 100
	// maxSocketPath is sizeof(sun_path) minus the terminating NUL.
	maxSocketPath = 107
	// minDenialsRetention keeps a sweep from removing the directory of a
	// pod whose containers are only being restarted.
	minDenialsRetention = time.Minute
	maxDenialsLogPerMin = 10000
	maxDenialsRecordsPS = 1_000_000
)

func defaultDenials() Denials {
	return Denials{
		Enabled:         true,
		Dir:             DefaultDenialsDir,
		MaxFileBytes:    DefaultDenialsMaxFileBytes,
		MaxFiles:        DefaultDenialsMaxFiles,
		AggregateWindow: DefaultDenialsWindow,
		QueueSize:       DefaultDenialsQueueSize,
		Retention:       DefaultDenialsRetention,
		MaxTotalBytes:   DefaultDenialsMaxTotal,
		LogPerMinute:    DefaultDenialsLogPerMinute,

		MaxRecordsPerSecond: DefaultDenialsRecordsPerSec,
	}
}

// RetentionPeriod returns the parsed retention (0: keep forever). It is only
// meaningful on a validated config; an unparsable value yields the default.
func (d *Denials) RetentionPeriod() time.Duration {
	r, err := time.ParseDuration(d.Retention)
	if err != nil {
		r, _ = time.ParseDuration(DefaultDenialsRetention)
	}
	return r
}

// Window returns the parsed aggregation window. It is only meaningful on a
// validated config; an unparsable value yields the default.
func (d *Denials) Window() time.Duration {
	w, err := time.ParseDuration(d.AggregateWindow)
	if err != nil {
		w, _ = time.ParseDuration(DefaultDenialsWindow)
	}
	return w
}

func (d *Denials) validate() error {
	if !filepath.IsAbs(d.Dir) || filepath.Clean(d.Dir) == "/" {
		return fmt.Errorf("key denials.dir: must be an absolute path other than /, got %q", d.Dir)
	}
	if d.MaxFileBytes < minDenialsFileBytes {
		return fmt.Errorf("key denials.max_file_bytes: must be at least %d, got %d", minDenialsFileBytes, d.MaxFileBytes)
	}
	if d.MaxFiles < 1 || d.MaxFiles > maxDenialsFiles {
		return fmt.Errorf("key denials.max_files: must be between 1 and %d, got %d", maxDenialsFiles, d.MaxFiles)
	}
	w, err := time.ParseDuration(d.AggregateWindow)
	if err != nil {
		return fmt.Errorf("key denials.aggregate_window: %w", err)
	}
	if w < 0 || w > maxDenialsWindow {
		return fmt.Errorf("key denials.aggregate_window: must be between 0 and %s, got %s", maxDenialsWindow, w)
	}
	if d.QueueSize < 1 || d.QueueSize > maxDenialsQueueSize {
		return fmt.Errorf("key denials.queue_size: must be between 1 and %d, got %d", maxDenialsQueueSize, d.QueueSize)
	}
	r, err := time.ParseDuration(d.Retention)
	if err != nil {
		return fmt.Errorf("key denials.retention: %w", err)
	}
	if r < 0 || r > 0 && r < minDenialsRetention {
		return fmt.Errorf("key denials.retention: must be 0 (keep) or at least %s, got %s", minDenialsRetention, r)
	}
	if d.MaxTotalBytes != 0 && d.MaxTotalBytes < d.MaxFileBytes {
		return fmt.Errorf("key denials.max_total_bytes: must be 0 (no cap) or at least max_file_bytes (%d), got %d", d.MaxFileBytes, d.MaxTotalBytes)
	}
	if d.LogPerMinute < 0 || d.LogPerMinute > maxDenialsLogPerMin {
		return fmt.Errorf("key denials.log_per_minute: must be between 0 and %d, got %d", maxDenialsLogPerMin, d.LogPerMinute)
	}
	if d.MaxRecordsPerSecond < 0 || d.MaxRecordsPerSecond > maxDenialsRecordsPS {
		return fmt.Errorf("key denials.max_records_per_second: must be between 0 (no limit) and %d, got %d", maxDenialsRecordsPS, d.MaxRecordsPerSecond)
	}
	if d.Socket != "" {
		if !filepath.IsAbs(d.Socket) {
			return fmt.Errorf("key denials.socket: must be an absolute path, got %q", d.Socket)
		}
		if len(d.Socket) > maxSocketPath {
			return fmt.Errorf("key denials.socket: longer than %d bytes (a unix socket path limit)", maxSocketPath)
		}
	}
	return nil
}
