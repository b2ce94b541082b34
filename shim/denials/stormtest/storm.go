//go:build cgo && seccomp

// Package stormtest measures the denial agent under a storm of denied
// syscalls: what `make bench` reports and what the root tests check
// (nothing lost, the rate, the cost per denial). It is not on the shim's path.
package stormtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/shim/denials"
	"github.com/stockade-dev/stockade/shim/denials/notifytest"
)

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
	if opt.RecordsPerSecond != 0 {
		cfg.MaxRecordsPerSecond = max(opt.RecordsPerSecond, 0)
	}
	recv, err := denials.WithReceiver(opt.Receiver, opt.NoSyncWakeUp)
	if err != nil {
		return res, fmt.Errorf("storm: %w", err)
	}
	sinks := append([]denials.Sink{denials.NewFileSink(cfg.Dir, cfg.MaxFileBytes, cfg.MaxFiles)}, opt.Sinks...)
	a, err := denials.New(cfg, "storm", denials.WithSocketPath(filepath.Join(dir, "a.sock")), denials.WithSinks(sinks...),
		recv)
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
		calls             []time.Duration
		threadCPU         time.Duration
		processCPU        time.Duration
		wrong             int
		err               error
	}
	done := make(chan loop, 1)
	go func() {
		// Locked and never unlocked: the thread dies with the goroutine,
		// taking its filter along (see notifytest.LoadNotifyFilter).
		runtime.LockOSThread()
		var l loop
		defer func() { done <- l }()
		const warm = 2000
		t0 := time.Now()
		for range warm {
			_, _, _ = unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		}
		l.baseline = time.Since(t0) / warm
		fd, err := notifytest.LoadNotifyFilter(unix.SYS_GETPPID)
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
		err = notifytest.SendProcessState(a.ListenerPath(), st, fd)
		_ = unix.Close(fd)
		if err != nil {
			l.err = err
			return
		}
		l.calls = make([]time.Duration, n)
		cpu0, pcpu0 := threadCPU(), processCPU()
		t0 = time.Now()
		for i := range n {
			if opt.Pause > 0 {
				time.Sleep(opt.Pause)
			}
			c0 := time.Now()
			// Syscall, not RawSyscall: the call blocks until the agent
			// answers, and a raw call would hold its P through a GC stop.
			_, _, errno := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
			l.calls[i] = time.Since(c0)
			if (opt.Mode == denial.ModeEnforce) != (errno == unix.EPERM) {
				l.wrong++
			}
			if opt.Pause > 0 {
				l.elapsed += l.calls[i]
			}
		}
		if opt.Pause <= 0 {
			l.elapsed = time.Since(t0)
		}
		l.threadCPU, l.processCPU = threadCPU()-cpu0, processCPU()-pcpu0
	}()
	l := <-done
	res.AgentCPU = max(l.processCPU-l.threadCPU, 0)
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
		slices.Sort(l.calls)
		res.Calls = l.calls
		res.P50, res.P99 = l.calls[n/2], l.calls[min(n*99/100, n-1)]
	}
	res.Delivered, res.Gapped, err = notifytest.SumDir(cfg.Dir)
	if err != nil {
		return res, err
	}
	res.Lost = max(n-int(res.Delivered+res.Gapped), 0)
	res.Stats = a.Stats()
	return res, nil
}

// MeasureKernelDeny times n getppid calls, one by one, that a seccomp
// filter fails with EPERM in the kernel, with no notification: what a
// denied syscall costs without denial streaming, measured the way Storm
// measures it. It returns the durations, sorted.
func MeasureKernelDeny(n int) ([]time.Duration, error) {
	type out struct {
		calls []time.Duration
		err   error
	}
	done := make(chan out, 1)
	go func() {
		// Locked and never unlocked: the filter dies with the thread.
		runtime.LockOSThread()
		var o out
		defer func() { done <- o }()
		if _, err := notifytest.LoadFilter(unix.SYS_GETPPID, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM), 0); err != nil {
			o.err = err
			return
		}
		o.calls = make([]time.Duration, n)
		for i := range n {
			c0 := time.Now()
			_, _, errno := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
			o.calls[i] = time.Since(c0)
			if errno != unix.EPERM {
				o.err = fmt.Errorf("kernel deny: getppid returned errno %v, want EPERM", errno)
				return
			}
		}
	}()
	o := <-done
	if o.err != nil {
		return nil, o.err
	}
	slices.Sort(o.calls)
	return o.calls, nil
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// processCPU is this process's CPU time, user and system.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
