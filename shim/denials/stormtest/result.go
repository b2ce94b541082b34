package stormtest

import (
	"time"

	"github.com/stockade-dev/stockade/shim/denials"
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
	Sinks []denials.Sink
	// Pause, if set, idles between calls, so each denial meets an idle
	// agent (the common case: a denial now and then) rather than a hot one.
	// Elapsed and Latency then count only the calls.
	Pause time.Duration
	// Receiver is how the agent waits for notifications: "" or "adaptive"
	// (the default: netpoller when idle, a thread of its own in a burst),
	// "poller" (always the netpoller) or "thread" (always its own thread).
	Receiver string
	// NoSyncWakeUp leaves SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP off.
	NoSyncWakeUp bool
	// RecordsPerSecond overrides max_records_per_second; negative means
	// no limit.
	RecordsPerSecond int
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
	// P50 and P99 are percentiles of single denied calls, each timed by
	// the workload (Pause storms: each call meets an idle agent).
	P50, P99 time.Duration
	// Calls are the single calls' durations, sorted.
	Calls []time.Duration
	// AgentCPU is the CPU time the process spent during the calls other
	// than the workload thread's own: the agent, its sinks and the Go
	// runtime serving them, what a shim would spend.
	AgentCPU time.Duration
	// Delivered is the number of denials accounted in denial records (the
	// sum of their counts), Gapped the number accounted in gap records.
	Delivered, Gapped uint64
	// Lost is the number of denials in neither; the design requires 0.
	Lost int
	// Wrong counts syscalls whose result did not match the mode (EPERM in
	// enforce mode, success in complain mode).
	Wrong int
	// Stats are the agent's counters after the storm.
	Stats denials.Stats
}

// CPUPer100k is AgentCPU scaled to 100,000 denials.
func (r StormResult) CPUPer100k() time.Duration {
	if r.Denials == 0 {
		return 0
	}
	return time.Duration(float64(r.AgentCPU) * 100_000 / float64(r.Denials))
}
