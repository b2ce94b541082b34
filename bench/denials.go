package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
	"github.com/stockade-dev/stockade/shim/denials/stormtest"
)

// denialTarget is the README's goal for one node: this many denials per
// second, none of them lost.
const denialTarget = 100_000

// denialStreaming (metric 4) measures what denial streaming costs one
// denied syscall, and how many denials per second it delivers without
// losing one: in-process (stormtest.MeasureStorm) and end to end, from a
// container's loop to its sink file.
func (b *runner) denialStreaming(ctx context.Context) ([]Metric, error) {
	var metrics []Metric
	m, err := b.denialLatency(ctx)
	if err != nil {
		return nil, err
	}
	metrics = append(metrics, m)
	metrics = append(metrics, b.denialStorm(ctx)...)
	metrics = append(metrics, b.denialEndToEnd(ctx)...)
	return metrics, nil
}

// probeCounts are the two loop lengths of `probe -n N keyctl` on one side:
// the slope between them is the cost of one call, whatever the exec costs.
type probeCounts struct{ short, long int }

// denialLatency execs `probe -n N keyctl` with two values of N in one
// long-running container per side, and takes the slope of the exec's wall
// time over N: ns per denied call, with exec and process start-up cancelled
// out. stockade denies keyctl through its generated profile, with a
// notification to the shim's agent; the baseline is runc with containerd's
// RuntimeDefault profile, which fails keyctl with EPERM in the kernel. The
// two sides loop for different N, each long enough that the loop and not
// the exec dominates; the slope is per call either way.
func (b *runner) denialLatency(ctx context.Context) (Metric, error) {
	reps := 10
	counts := map[string]probeCounts{
		harness.HandlerStockade: {2_000, 20_000},
		harness.HandlerRunc:     {100_000, 1_000_000},
	}
	if b.cfg.Smoke {
		reps = 1
		counts = map[string]probeCounts{
			harness.HandlerStockade: {500, 5_000},
			harness.HandlerRunc:     {20_000, 200_000},
		}
	}
	opts := map[string][]oci.SpecOpts{
		// No seccomp in the spec: stockade generates the profile.
		harness.HandlerRunc: {seccomp.WithDefaultProfile()},
	}
	image, err := b.busybox(ctx)
	if err != nil {
		return Metric{}, err
	}
	b.cfg.Logf("denial latency: %d pairs of execs per side", reps)

	sleepers := map[string]*sleeper{}
	defer func() {
		for _, s := range sleepers {
			s.close()
		}
	}()
	cs := b.interleave(ctx, reps, func(ctx context.Context, s *side) ([]float64, error) {
		sl := sleepers[s.name]
		if sl == nil {
			var err error
			if sl, err = startSleeper(ctx, s.env, image, opts[s.name]...); err != nil {
				return nil, err
			}
			sleepers[s.name] = sl
		}
		n := counts[s.name]
		var d [2]time.Duration
		for i, count := range []int{n.short, n.long} {
			wall, out, err := sl.exec(ctx, "/bin/probe", "-n", strconv.Itoa(count), "keyctl")
			if err != nil {
				return nil, err
			}
			if err := checkDenied(out, count); err != nil {
				return nil, err
			}
			d[i] = wall
		}
		slope := float64(d[1]-d[0]) / float64(n.long-n.short)
		return []float64{slope}, nil
	})
	m := metric("denial streaming", "one denied keyctl()", "ns/call",
		"runc + containerd RuntimeDefault seccomp (EPERM in the kernel, no notification)", cs)
	m.Note = fmt.Sprintf("slope of exec wall time over N for `probe -n N keyctl`, N = %d and %d for stockade, %d and %d for the baseline",
		counts[harness.HandlerStockade].short, counts[harness.HandlerStockade].long,
		counts[harness.HandlerRunc].short, counts[harness.HandlerRunc].long)
	return m, nil
}

// probeLine is what `probe -n N NAME` prints.
var probeLine = regexp.MustCompile(`(\S+) ok=(\d+) errors=(\d+) errno=(\S+)`)

// checkDenied checks that every one of count calls failed with EPERM: a
// loop of allowed calls would time something else entirely.
func checkDenied(out string, count int) error {
	m := probeLine.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("probe printed %q", strings.TrimSpace(out))
	}
	if m[3] != strconv.Itoa(count) || m[4] != "EPERM" {
		return fmt.Errorf("keyctl was not denied with EPERM every time: %s", strings.TrimSpace(m[0]))
	}
	return nil
}

// stormVariant is one way of running the in-process storm.
type stormVariant struct {
	name string
	opt  stormtest.StormOptions
}

// stormRuns are the storms of denialStorm, by variant, in run order.
type stormRuns map[string][]stormtest.StormResult

// denialStorm runs real seccomp-notify storms against an agent with the
// node defaults in this process (denials.Storm), interleaved with the same
// storm with SYNC_WAKE_UP off and with the netpoller-only receiver (the
// comparisons behind the defaults), and times the same call denied in the
// kernel. Rows: per-call cost to the workload against the in-kernel EPERM,
// the sustained lossless rate, the agent's CPU per 100k denials, and the
// two comparisons.
func (b *runner) denialStorm(ctx context.Context) []Metric {
	n, runs := 200_000, 3
	if b.cfg.Smoke {
		n, runs = 20_000, 1
	}
	variants := []stormVariant{
		{"default", stormtest.StormOptions{}},
		{"nosync", stormtest.StormOptions{NoSyncWakeUp: true}},
		{"poller", stormtest.StormOptions{Receiver: "poller"}},
	}
	b.cfg.Logf("denial storm: %d runs of %d denials in-process, %d variants and the in-kernel deny", runs, n, len(variants))
	res := stormRuns{}
	var kernel []time.Duration
	var err error
	for i := 0; i < runs && err == nil; i++ {
		if err = ctx.Err(); err != nil {
			break
		}
		// Rotate the order so no variant always runs first.
		for j := range variants {
			v := variants[(i+j)%len(variants)]
			var r stormtest.StormResult
			if r, err = stormtest.Storm(n, v.opt); err != nil {
				err = fmt.Errorf("%s storm failed after %d runs: %w", v.name, len(res[v.name]), err)
				break
			}
			res[v.name] = append(res[v.name], r)
		}
		if err != nil {
			break
		}
		var k []time.Duration
		if k, err = stormtest.MeasureKernelDeny(n); err != nil {
			break
		}
		kernel = append(kernel, k...)
	}
	if err != nil {
		b.cfg.Logf("denial storm: %v", err)
	}
	def := res["default"]
	var calls []time.Duration
	var rates, cpus []float64
	var lost []string
	lossless := true
	for _, r := range def {
		calls = append(calls, r.Calls...)
		rates = append(rates, r.Rate)
		cpus = append(cpus, ms(r.CPUPer100k()))
		lost = append(lost, strconv.Itoa(r.Lost))
		lossless = lossless && r.Lost == 0 && r.Wrong == 0
	}
	accounts := make([]string, 0, len(def))
	for _, r := range def {
		accounts = append(accounts, fmt.Sprintf("%d+%d", r.Delivered, r.Gapped))
	}

	perCall := Metric{
		Group: "denial streaming", Unit: "ns/call",
		Name:     fmt.Sprintf("one denied getppid(), in-process storm: each of %d×%d calls timed by the workload", runs, n),
		Baseline: "the same call failed with EPERM by a seccomp filter in the kernel (no notification)",
		Stockade: durationsOutcome(calls, err), Runc: durationsOutcome(kernel, err),
		Note: "stormtest.Storm with the node defaults vs stormtest.MeasureKernelDeny; p50/p99 over single calls",
	}
	rate := Metric{
		Group: "denial streaming", Unit: "denials/s",
		Name:     fmt.Sprintf("sustained rate, in-process storm, n=%d", n),
		Baseline: "none (runc streams no denials)",
		Stockade: samplesOutcome(rates, err), Runc: Outcome{NotApplicable: "runc streams no denials"},
	}
	cpu := Metric{
		Group: "denial streaming", Unit: "ms CPU/100k denials",
		Name:     fmt.Sprintf("agent CPU per 100,000 denials, in-process storm, n=%d", n),
		Baseline: "none (runc streams no denials)",
		Stockade: samplesOutcome(cpus, err), Runc: Outcome{NotApplicable: "runc streams no denials"},
		Note: "process CPU (user+system) during the storm minus the workload thread's own: agent, sinks, Go runtime",
	}
	if err == nil {
		s := Summarize(rates)
		rate.Note = "stormtest.Storm: getppid notified to an agent with the node defaults; delivered+gapped per run: " +
			strings.Join(accounts, ", ") + fmt.Sprintf(" of %d; lost per run: ", n) + strings.Join(lost, ", ") + "; " + verdict(s, lossless)
	}
	metrics := []Metric{perCall, rate, cpu}
	for _, c := range []struct{ variant, name, baseline, note string }{
		{"nosync", "one denied getppid(), in-process, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on (default)", "the same storm with the flag off",
			"the flag wakes the workload on the agent's CPU and the agent on the workload's"},
		{"poller", "one denied getppid(), in-process, adaptive receiver (default: netpoller when idle, own thread in a burst)", "the same storm, netpoller only",
			"in a burst the receiver blocks in SECCOMP_IOCTL_NOTIF_RECV on a thread of its own, woken by the kernel directly"},
	} {
		var other []time.Duration
		for _, r := range res[c.variant] {
			other = append(other, r.Calls...)
		}
		metrics = append(metrics, Metric{
			Group: "denial streaming", Unit: "ns/call", Name: c.name, Baseline: c.baseline,
			Stockade: durationsOutcome(calls, err), Runc: durationsOutcome(other, err), Note: c.note,
		})
	}
	return metrics
}

// durationsOutcome summarises single-call durations: p50 and p99 over all
// of them. The samples are not kept (hundreds of thousands).
func durationsOutcome(d []time.Duration, err error) Outcome {
	if err != nil {
		return Outcome{Unavailable: err.Error()}
	}
	if len(d) == 0 {
		return Outcome{Unavailable: "no calls timed"}
	}
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x.Nanoseconds())
	}
	s := Summarize(v)
	s.Samples = nil
	return Outcome{Summary: s}
}

func samplesOutcome(v []float64, err error) Outcome {
	if err != nil {
		return Outcome{Unavailable: err.Error()}
	}
	return Outcome{Summary: Summarize(v)}
}

// denialEndToEnd runs `probe -n N keyctl` as a stockade container's process
// with the default node config and accounts for every denial in the
// container's sink file: the rate the workload saw (N over the wall time
// from start to exit), whether delivered + dropped = N with nothing
// dropped, and the CPU the container's shim spent per 100k denials.
func (b *runner) denialEndToEnd(ctx context.Context) []Metric {
	n, runs := 200_000, 3
	if b.cfg.Smoke {
		n, runs = 20_000, 1
	}
	stockade := b.sides[0]
	c := &collector{err: stockade.unavailable}
	cpu := &collector{err: stockade.unavailable}
	var accounts []string
	lossless := true
	image, err := b.busybox(ctx)
	if err != nil && c.err == nil {
		c.err = err
	}
	if c.err == nil {
		b.cfg.Logf("denial end to end: %d containers of %d keyctl denials", runs, n)
	}
	for i := 0; i < runs && c.err == nil; i++ {
		r, err := runDenialStorm(ctx, stockade.env, image, n)
		if err != nil {
			c.err = fmt.Errorf("failed after %d good samples: %w", len(c.samples), err)
			cpu.err = c.err
			b.cfg.Logf("denial end to end: %v", err)
			break
		}
		c.samples = append(c.samples, r.rate)
		cpu.samples = append(cpu.samples, ms(r.shimCPU)*100_000/float64(n))
		accounts = append(accounts, fmt.Sprintf("%d+%d", r.delivered, r.dropped))
		if r.delivered+r.dropped != uint64(n) || r.dropped != 0 {
			lossless = false
		}
	}
	m := Metric{
		Group:    "denial streaming",
		Name:     fmt.Sprintf("end to end: `probe -n %d keyctl` → sink file", n),
		Unit:     "denials/s",
		Baseline: "none (runc streams no denials)",
		Stockade: c.outcome(),
		Runc:     Outcome{NotApplicable: "runc streams no denials"},
	}
	if c.err == nil {
		m.Note = fmt.Sprintf("one container per run, default node config, rate = N / start→exit; delivered+dropped per run: %s of %d; %s",
			strings.Join(accounts, ", "), n, verdictE2E(m.Stockade.Summary, lossless))
	}
	cm := Metric{
		Group:    "denial streaming",
		Name:     fmt.Sprintf("shim CPU per 100,000 denials, end to end (`probe -n %d keyctl`)", n),
		Unit:     "ms CPU/100k denials",
		Baseline: "none (runc streams no denials)",
		Stockade: cpu.outcome(),
		Runc:     Outcome{NotApplicable: "runc streams no denials"},
		Note:     "the container's shim process (user+system, /proc/<pid>/stat) from start to exit, scaled to 100k",
	}
	return []Metric{m, cm}
}

// e2eTarget is the end-to-end goal: lossless from one container
// to the sink.
const e2eTarget = 60_000

func verdictE2E(s *Summary, lossless bool) string {
	switch {
	case s == nil:
		return "no rate"
	case !lossless:
		return fmt.Sprintf("NOT lossless: misses the ≥%d/s lossless target", e2eTarget)
	case s.P50 < e2eTarget:
		return fmt.Sprintf("lossless, but below the ≥%d/s end-to-end target", e2eTarget)
	}
	return fmt.Sprintf("lossless, meets the ≥%d/s end-to-end target", e2eTarget)
}

// verdict says whether a rate meets the README's target.
func verdict(s *Summary, lossless bool) string {
	switch {
	case s == nil:
		return "no rate"
	case !lossless:
		return fmt.Sprintf("NOT lossless: misses the ≥%d/s lossless target", denialTarget)
	case s.P50 < denialTarget:
		return fmt.Sprintf("lossless, but below the ≥%d/s target", denialTarget)
	}
	return fmt.Sprintf("lossless, meets the ≥%d/s target", denialTarget)
}

// e2eStorm is what one end-to-end storm measured.
type e2eStorm struct {
	rate               float64
	delivered, dropped uint64
	shimCPU            time.Duration
}

// runDenialStorm runs one container whose process is `probe -n n keyctl`,
// then reads its sink file until every denial is accounted for (or 15 s
// pass), and returns the rate, the sums of the denial and gap records and
// the CPU the shim spent from start to exit.
func runDenialStorm(ctx context.Context, env *harness.Env, image client.Image, n int) (e2eStorm, error) {
	var zero e2eStorm
	// The loop alone takes seconds (tens under load): more than opTimeout.
	ctx, cancel := context.WithTimeout(ctx, 3*opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	id := randomID("bench-denials")

	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("/bin/probe", "-n", strconv.Itoa(n), "keyctl")),
	)
	if err != nil {
		return zero, fmt.Errorf("create container: %w", err)
	}
	defer cleanupContainer(env, ctr)
	logPath := denials.LogPath(env.LogDir, denial.Attribution{Namespace: harness.Namespace, Pod: id, PodUID: id, Container: id})
	defer os.RemoveAll(filepath.Dir(logPath))

	var stdout, stderr bytes.Buffer
	task, err := ctr.NewTask(ctx, env.NewIO(nil, &stdout, &stderr))
	if err != nil {
		return zero, fmt.Errorf("create task: %w", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return zero, fmt.Errorf("wait task: %w", err)
	}
	// The container's init is a child of its shim (libcontainer runs in
	// the shim); the shim outlives the task until Delete.
	shim, err := parentPid(int(task.Pid()))
	if err != nil {
		return zero, err
	}
	cpu0, err := processTicks(shim)
	if err != nil {
		return zero, err
	}
	t0 := time.Now()
	if err := task.Start(ctx); err != nil {
		return zero, fmt.Errorf("start task: %w", err)
	}
	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		return zero, fmt.Errorf("probe did not exit: %w", ctx.Err())
	}
	wall := time.Since(t0)
	cpu1, err := processTicks(shim)
	if err != nil {
		return zero, err
	}
	if _, err := task.Delete(ctx); err != nil {
		return zero, fmt.Errorf("delete task: %w", err)
	}
	if code, _, err := status.Result(); err != nil || code != 0 {
		return zero, fmt.Errorf("probe exited %d (%v): %s", code, err, strings.TrimSpace(stderr.String()))
	}
	if err := checkDenied(stdout.String(), n); err != nil {
		return zero, err
	}

	// Records reach the file asynchronously; the last window's aggregate
	// may come after the exit.
	var delivered, dropped uint64
	deadline := time.Now().Add(15 * time.Second)
	for {
		delivered, dropped, err = sumRecords(logPath, "keyctl")
		if err != nil {
			return zero, err
		}
		if delivered+dropped >= uint64(n) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("waiting for %s: %w", logPath, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return e2eStorm{
		rate:      float64(n) / wall.Seconds(),
		delivered: delivered, dropped: dropped,
		shimCPU: time.Duration(cpu1-cpu0) * time.Second / clockTicks,
	}, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// parentPid reads the parent of pid from /proc/<pid>/stat.
func parentPid(pid int) (int, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1])
}

// processTicks is utime+stime of pid, all its threads, in clock ticks.
func processTicks(pid int) (int64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// statFields returns the fields of /proc/<pid>/stat after the command
// name (which may hold spaces): [0] is the state, [1] the parent, [11]
// utime, [12] stime.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, fmt.Errorf("shim CPU: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// sumRecords adds up the counts of the syscall's denial records and the
// dropped counts of the gap records in a sink file and its rotated copies.
func sumRecords(path, syscall string) (delivered, dropped uint64, err error) {
	files, err := filepath.Glob(path + "*")
	if err != nil {
		return 0, 0, err
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // rotated away meanwhile
			}
			return 0, 0, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r denials.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				// The agent may be mid-line; the next poll reads it whole.
				continue
			}
			switch {
			case r.Type == denials.TypeGap:
				dropped += r.Dropped
			case r.Syscall == syscall:
				delivered += r.Count
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
	}
	return delivered, dropped, nil
}

// sleeper is a long-running busybox container to exec into.
type sleeper struct {
	env  *harness.Env
	ctr  client.Container
	task client.Task
}

// startSleeper starts `sleep 3600` in busybox on env's runtime.
func startSleeper(ctx context.Context, env *harness.Env, image client.Image, opts ...oci.SpecOpts) (_ *sleeper, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	id := randomID("bench-sleep")
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "3600")}, opts...)
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	defer func() {
		if retErr != nil {
			cleanupContainer(env, ctr)
		}
	}()
	task, err := ctr.NewTask(ctx, env.NewIO(nil, nil, nil))
	if err != nil {
		return nil, fmt.Errorf("create task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start task: %w", err)
	}
	return &sleeper{env: env, ctr: ctr, task: task}, nil
}

// exec runs args in the sleeper and returns the wall time from the start
// of the exec'd process to its exit, and its standard output.
func (s *sleeper) exec(ctx context.Context, args ...string) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	spec, err := s.ctr.Spec(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("container spec: %w", err)
	}
	pspec := *spec.Process
	pspec.Args = args
	pspec.Terminal = false

	var stdout, stderr bytes.Buffer
	p, err := s.task.Exec(ctx, randomID("exec"), &pspec, s.env.NewIO(nil, &stdout, &stderr))
	if err != nil {
		return 0, "", fmt.Errorf("exec: %w", err)
	}
	deleted := false
	defer func() {
		if deleted {
			return
		}
		dctx, dcancel := context.WithTimeout(s.env.Context(), 30*time.Second)
		defer dcancel()
		_, _ = p.Delete(dctx, client.WithProcessKill)
	}()
	exitCh, err := p.Wait(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("wait exec: %w", err)
	}
	t0 := time.Now()
	if err := p.Start(ctx); err != nil {
		return 0, "", fmt.Errorf("start exec: %w", err)
	}
	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		return 0, "", fmt.Errorf("%s did not exit: %w", strings.Join(args, " "), ctx.Err())
	}
	wall := time.Since(t0)
	// Delete closes the process's IO, so every byte of output has arrived.
	if _, err := p.Delete(ctx); err != nil {
		return 0, "", fmt.Errorf("delete exec: %w", err)
	}
	deleted = true
	if code, _, err := status.Result(); err != nil || code != 0 {
		return 0, "", fmt.Errorf("%s exited %d (%v): %s", strings.Join(args, " "), code, err, strings.TrimSpace(stderr.String()))
	}
	return wall, stdout.String(), nil
}

func (s *sleeper) close() { cleanupContainer(s.env, s.ctr) }
