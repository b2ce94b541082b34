package bench

import "context"

// The measurements below have a place in the report but no implementation
// yet: each needs a stockade feature that is still being written. Each hook
// returns why it did not measure; fill one in by replacing its body with a
// measurement that returns Metrics (and adding it to Run's steps).

// notMeasured runs every hook and reports what it could not measure.
func (b *runner) notMeasured(ctx context.Context) []NotMeasured {
	var out []NotMeasured
	for _, hook := range []func(context.Context) NotMeasured{
		b.denialRate,
		b.usernsStartLatency,
		b.exeProtectionPath,
	} {
		nm := hook(ctx)
		b.cfg.Logf("not measured: %s: %s", nm.Name, nm.Reason)
		out = append(out, nm)
	}
	return out
}

// denialRate (metric 4) is meant to measure how many denied syscalls per
// second the denial stream delivers to the sink before it drops or folds
// records, and what a storm of denials costs the container: run a loop of a
// syscall the generated profile denies, count the records in
// <LogDir>/<ns>_<pod>_<uid>/<container>.log and the gap records.
func (b *runner) denialRate(context.Context) NotMeasured {
	return NotMeasured{
		Name:   "denial rate (records/s delivered, drops under a storm)",
		Reason: "needs the denial stream (shim/denials) and a syscall the generated profile is known to deny; neither is settled yet",
	}
}

// usernsStartLatency (metric 5) is meant to compare pod start latency with
// stockade's user-namespace remapping on and off (node config
// [userns] enabled), which shows what the idmapped rootfs mount costs
// against a plain one.
func (b *runner) usernsStartLatency(context.Context) NotMeasured {
	return NotMeasured{
		Name:   "user namespace on/off: pod start latency",
		Reason: "needs profiles/userns range allocation and idmapped mounts wired into the shim; rewrite env.NodeConfig with [userns] enabled = true/false between interleaved iterations once they are",
	}
}

// exeProtectionPath (metric 6) is meant to report which CVE-2019-5736
// protection libcontainer took when it cloned /proc/self/exe for the
// container's init (a sealed overlay, cheap, or a memfd copy of the whole
// shim binary, expensive), and what each costs at start.
func (b *runner) exeProtectionPath(context.Context) NotMeasured {
	return NotMeasured{
		Name:   "exe protection path taken by libcontainer (overlay vs memfd copy)",
		Reason: "the shim does not report it yet; it needs a debug log line or annotation from shim/container naming the path, which the bench can then read from the shim log",
	}
}
