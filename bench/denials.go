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
)

// denialTarget is the README's goal for one node: this many denials per
// second, none of them lost.
const denialTarget = 100_000

// denialStreaming (metric 4) measures what denial streaming costs one
// denied syscall, and how many denials per second it delivers without
// losing one: in-process (denials.MeasureStorm) and end to end, from a
// container's loop to its sink file.
func (b *runner) denialStreaming(ctx context.Context) ([]Metric, error) {
	var metrics []Metric
	m, err := b.denialLatency(ctx)
	if err != nil {
		return nil, err
	}
	metrics = append(metrics, m)
	metrics = append(metrics, b.denialStorm(ctx), b.denialEndToEnd(ctx))
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

// denialStorm runs denials.MeasureStorm: a real seccomp-notify storm
// against an agent with the node defaults, in this process.
func (b *runner) denialStorm(ctx context.Context) Metric {
	n, runs := 200_000, 3
	if b.cfg.Smoke {
		n, runs = 20_000, 1
	}
	b.cfg.Logf("denial storm: %d runs of %d denials in-process", runs, n)
	c := &collector{}
	var lost []string
	for range runs {
		if err := ctx.Err(); err != nil {
			c.err = err
			break
		}
		rate, l, err := denials.MeasureStorm(n)
		if err != nil {
			c.err = fmt.Errorf("failed after %d good samples: %w", len(c.samples), err)
			b.cfg.Logf("denial storm: %v", err)
			break
		}
		c.samples = append(c.samples, rate)
		lost = append(lost, strconv.Itoa(l))
	}
	m := Metric{
		Group:    "denial streaming",
		Name:     fmt.Sprintf("sustained rate, in-process storm, n=%d", n),
		Unit:     "denials/s",
		Baseline: "none (runc streams no denials)",
		Stockade: c.outcome(),
		Runc:     Outcome{NotApplicable: "runc streams no denials"},
	}
	if c.err == nil {
		m.Note = "denials.MeasureStorm: getppid notified to an agent with the node defaults; lost per run: " +
			strings.Join(lost, ", ") + "; " + verdict(m.Stockade.Summary, allZero(lost))
	}
	return m
}

// denialEndToEnd runs `probe -n N keyctl` as a stockade container's process
// with the default node config and accounts for every denial in the
// container's sink file: the rate the workload saw (N over the wall time
// from start to exit) and whether delivered + dropped = N with nothing
// dropped.
func (b *runner) denialEndToEnd(ctx context.Context) Metric {
	n, runs := 200_000, 3
	if b.cfg.Smoke {
		n, runs = 20_000, 1
	}
	stockade := b.sides[0]
	c := &collector{err: stockade.unavailable}
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
		rate, delivered, dropped, err := runDenialStorm(ctx, stockade.env, image, n)
		if err != nil {
			c.err = fmt.Errorf("failed after %d good samples: %w", len(c.samples), err)
			b.cfg.Logf("denial end to end: %v", err)
			break
		}
		c.samples = append(c.samples, rate)
		accounts = append(accounts, fmt.Sprintf("%d+%d", delivered, dropped))
		if delivered+dropped != uint64(n) || dropped != 0 {
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
			strings.Join(accounts, ", "), n, verdict(m.Stockade.Summary, lossless))
	}
	return m
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

func allZero(ss []string) bool {
	for _, s := range ss {
		if s != "0" {
			return false
		}
	}
	return true
}

// runDenialStorm runs one container whose process is `probe -n n keyctl`,
// then reads its sink file until every denial is accounted for (or 15 s
// pass), and returns the rate and the sums of the denial and gap records.
func runDenialStorm(ctx context.Context, env *harness.Env, image client.Image, n int) (rate float64, delivered, dropped uint64, retErr error) {
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
		return 0, 0, 0, fmt.Errorf("create container: %w", err)
	}
	defer cleanupContainer(env, ctr)
	logPath := denials.LogPath(env.LogDir, denial.Attribution{Namespace: harness.Namespace, Pod: id, PodUID: id, Container: id})
	defer os.RemoveAll(filepath.Dir(logPath))

	var stdout, stderr bytes.Buffer
	task, err := ctr.NewTask(ctx, env.NewIO(nil, &stdout, &stderr))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("create task: %w", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("wait task: %w", err)
	}
	t0 := time.Now()
	if err := task.Start(ctx); err != nil {
		return 0, 0, 0, fmt.Errorf("start task: %w", err)
	}
	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		return 0, 0, 0, fmt.Errorf("probe did not exit: %w", ctx.Err())
	}
	wall := time.Since(t0)
	if _, err := task.Delete(ctx); err != nil {
		return 0, 0, 0, fmt.Errorf("delete task: %w", err)
	}
	if code, _, err := status.Result(); err != nil || code != 0 {
		return 0, 0, 0, fmt.Errorf("probe exited %d (%v): %s", code, err, strings.TrimSpace(stderr.String()))
	}
	if err := checkDenied(stdout.String(), n); err != nil {
		return 0, 0, 0, err
	}

	// Records reach the file asynchronously; the last window's aggregate
	// may come after the exit.
	deadline := time.Now().Add(15 * time.Second)
	for {
		delivered, dropped, err = sumRecords(logPath, "keyctl")
		if err != nil {
			return 0, 0, 0, err
		}
		if delivered+dropped >= uint64(n) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, 0, fmt.Errorf("waiting for %s: %w", logPath, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return float64(n) / wall.Seconds(), delivered, dropped, nil
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
