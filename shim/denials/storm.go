//go:build cgo && seccomp

package denials

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/denial"
)

// StormOptions tunes Storm. Zero values take the node defaults.
type StormOptions struct {
	// Mode is denial.ModeEnforce (default) or denial.ModeComplain.
	Mode string
	// Window is the aggregation window; negative disables folding.
	Window time.Duration
	// QueueSize bounds the queue (default config.DefaultDenialsQueueSize).
	QueueSize int
	// Sinks, if set, receive the records in addition to the file sink.
	Sinks []Sink
	// Pause, if set, idles between calls, so each denial meets an idle
	// agent (the common case: a denial now and then) rather than a hot one.
	// Elapsed and Latency then count only the calls.
	Pause time.Duration
}

// StormResult is what one storm measured.
type StormResult struct {
	// Denials is the number of notified syscalls made.
	Denials int
	// Elapsed is the wall time of the syscall loop.
	Elapsed time.Duration
	// Rate is denied syscalls per second, as the workload experienced them.
	Rate float64
	// Latency is the mean duration of one notified syscall (the round trip
	// through the kernel and the agent); Baseline is the same syscall with
	// no filter, so Latency-Baseline is what the agent adds.
	Latency, Baseline time.Duration
	// Delivered is the number of denials accounted in denial records (the
	// sum of their counts), Gapped the number accounted in gap records.
	Delivered, Gapped uint64
	// Lost is the number of denials in neither; the design requires 0.
	Lost int
	// Wrong counts syscalls whose result did not match the mode (EPERM in
	// enforce mode, success in complain mode).
	Wrong int
	// Stats are the agent's counters after the storm.
	Stats Stats
}

// MeasureStorm makes n denied getppid calls through a real seccomp filter
// and an agent with the node defaults, and returns the rate the workload saw
// and the number of denials neither delivered nor counted in a gap (0 when
// the design holds). It is what `make bench` calls.
func MeasureStorm(n int) (rate float64, lost int, err error) {
	r, err := Storm(n, StormOptions{})
	return r.Rate, r.Lost, err
}

// Storm runs one measured storm: an agent on a temporary directory, one
// thread of this process with a filter that notifies getppid (standing in
// for a container process; the fd goes over the listener socket exactly as
// libcontainer sends it), n calls, then a full accounting of the sink.
func Storm(n int, opt StormOptions) (StormResult, error) {
	res := StormResult{Denials: n}
	if opt.Mode == "" {
		opt.Mode = denial.ModeEnforce
	}
	dir, err := os.MkdirTemp("", "stockade-storm-")
	if err != nil {
		return res, fmt.Errorf("storm: %w", err)
	}
	defer os.RemoveAll(dir)

	cfg := config.Default().Denials
	cfg.Dir = filepath.Join(dir, "log")
	cfg.MaxFileBytes = 1 << 40 // account for every record: no rotation
	if opt.Window != 0 {
		cfg.AggregateWindow = max(opt.Window, 0).String()
	}
	if opt.QueueSize > 0 {
		cfg.QueueSize = opt.QueueSize
	}
	sinks := append([]Sink{NewFileSink(cfg.Dir, cfg.MaxFileBytes, cfg.MaxFiles)}, opt.Sinks...)
	a, err := New(cfg, "storm", WithSocketPath(filepath.Join(dir, "a.sock")), WithSinks(sinks...))
	if err != nil {
		return res, err
	}
	attr := denial.Attribution{Namespace: "stockade-bench", Pod: "storm", PodUID: "storm", Container: "storm"}
	if err := a.Register("storm", attr, opt.Mode, "storm"); err != nil {
		_ = a.Close()
		return res, err
	}
	type loop struct {
		elapsed, baseline time.Duration
		wrong             int
		err               error
	}
	done := make(chan loop, 1)
	go func() {
		// Locked and never unlocked: the thread dies with the goroutine,
		// taking its filter along (see loadNotifyFilter).
		runtime.LockOSThread()
		var l loop
		defer func() { done <- l }()
		const warm = 2000
		t0 := time.Now()
		for range warm {
			_, _, _ = unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		}
		l.baseline = time.Since(t0) / warm
		fd, err := loadNotifyFilter(unix.SYS_GETPPID)
		if err != nil {
			l.err = err
			return
		}
		st := &specs.ContainerProcessState{
			Version:  specs.Version,
			Fds:      []string{specs.SeccompFdName},
			Pid:      unix.Getpid(),
			Metadata: denial.ListenerMetadata(opt.Mode, "storm"),
			State:    specs.State{Version: specs.Version, ID: "storm", Status: specs.StateRunning, Pid: unix.Getpid()},
		}
		err = sendProcessState(a.ListenerPath(), st, fd)
		_ = unix.Close(fd)
		if err != nil {
			l.err = err
			return
		}
		t0 = time.Now()
		for range n {
			if opt.Pause > 0 {
				time.Sleep(opt.Pause)
				t0 = time.Now()
			}
			// Syscall, not RawSyscall: the call blocks until the agent
			// answers, and a raw call would hold its P through a GC stop.
			_, _, errno := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
			if (opt.Mode == denial.ModeEnforce) != (errno == unix.EPERM) {
				l.wrong++
			}
			if opt.Pause > 0 {
				l.elapsed += time.Since(t0)
			}
		}
		if opt.Pause <= 0 {
			l.elapsed = time.Since(t0)
		}
	}()
	l := <-done
	cerr := a.Close()
	if l.err != nil {
		return res, fmt.Errorf("storm: %w", l.err)
	}
	if cerr != nil {
		return res, cerr
	}
	res.Elapsed, res.Baseline, res.Wrong = l.elapsed, l.baseline, l.wrong
	if n > 0 && l.elapsed > 0 {
		res.Rate = float64(n) / l.elapsed.Seconds()
		res.Latency = l.elapsed / time.Duration(n)
	}
	res.Delivered, res.Gapped, err = sumDir(cfg.Dir)
	if err != nil {
		return res, err
	}
	res.Lost = max(n-int(res.Delivered+res.Gapped), 0)
	res.Stats = a.Stats()
	return res, nil
}

// sumDir adds up the counts of denial records and the dropped counts of gap
// records in every file under dir.
func sumDir(dir string) (delivered, gapped uint64, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if r.Type == TypeGap {
				gapped += r.Dropped
			} else {
				delivered += r.Count
			}
		}
		return sc.Err()
	})
	return delivered, gapped, err
}
