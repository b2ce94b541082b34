package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// settle is how long pods idle before their shims are measured: shims
// allocate while starting containers, and a Go shim returns memory to the
// kernel only after a GC cycle or two.
const settle = 2 * time.Second

// shimMemory measures the proportional set size of all shims of this
// containerd, per pod, with 1, 10 and 50 pods (each a sandbox plus one
// sleeping busybox container) running on one side at a time.
func (b *runner) shimMemory(ctx context.Context) ([]Metric, error) {
	counts := []int{1, 10, 50}
	if b.cfg.Smoke {
		counts = []int{1, 3}
	}
	conn, err := b.env.DialCRI()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)

	var metrics []Metric
	for i, count := range counts {
		b.cfg.Logf("shim memory: %d pods per side", count)
		notes := map[string]string{}
		// One measurement per side; which side goes first alternates with
		// the pod count instead of within it.
		order := b.sides
		if i%2 == 1 {
			order = []*side{b.sides[1], b.sides[0]}
		}
		cs := map[string]*collector{}
		for _, s := range order {
			c := &collector{err: s.unavailable}
			cs[s.name] = c
			if c.err != nil {
				continue
			}
			perPod, shims, err := b.measurePods(ctx, rs, s, count)
			if err != nil {
				c.err = err
				b.cfg.Logf("%s: %v", s.name, err)
				continue
			}
			c.samples = []float64{perPod}
			notes[s.name] = fmt.Sprintf("%s %d shims", s.name, shims)
		}
		running := fmt.Sprintf("%d pods running", count)
		if count == 1 {
			running = "1 pod running"
		}
		m := metric("shim memory", "PSS per pod, "+running, "MiB", "runc", cs)
		var parts []string
		for _, s := range b.sides {
			if n := notes[s.name]; n != "" {
				parts = append(parts, n)
			}
		}
		m.Note = strings.Join(parts, "; ")
		metrics = append(metrics, m)
	}
	return metrics, nil
}

// measurePods starts count pods on s, lets them settle, and returns the
// summed shim PSS divided by count (MiB) and the number of shims.
func (b *runner) measurePods(ctx context.Context, rs runtimeapi.RuntimeServiceClient, s *side, count int) (float64, int, error) {
	if err := b.waitNoShims(ctx); err != nil {
		return 0, 0, err
	}
	var pods []*pod
	defer func() {
		for _, p := range pods {
			p.remove(rs)
		}
	}()
	for i := range count {
		pctx, cancel := context.WithTimeout(ctx, opTimeout)
		p, err := startPod(pctx, rs, s.env, randomID(fmt.Sprintf("bench-mem%d", i)), true)
		cancel()
		if p != nil {
			pods = append(pods, p)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	pids, err := s.env.ShimPIDs()
	if err != nil {
		return 0, 0, err
	}
	if len(pids) == 0 {
		return 0, 0, errors.New("no shim processes found")
	}
	var totalKiB int64
	for pid := range pids {
		kib, err := pssKiB(pid)
		if err != nil {
			return 0, 0, err
		}
		totalKiB += kib
		if dir := os.Getenv(memDumpEnv); dir != "" {
			dumpSmaps(dir, s.name, count, pid)
		}
	}
	return float64(totalKiB) / 1024 / float64(count), len(pids), nil
}

// memDumpEnv names a directory where every measured shim's
// /proc/<pid>/smaps is copied, to see where its memory goes.
const memDumpEnv = "STOCKADE_BENCH_MEM_DUMP"

func dumpSmaps(dir, side string, count, pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err == nil {
		err = os.WriteFile(fmt.Sprintf("%s/%s-%dpods-%d.smaps", dir, side, count, pid), b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", memDumpEnv, err)
	}
}

// waitNoShims waits until the previous measurement's shims have exited, so
// they are not counted against the next one.
func (b *runner) waitNoShims(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids, err := b.env.ShimPIDs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d shims still running from an earlier measurement", len(pids))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pssKiB reads the Pss line of /proc/<pid>/smaps_rollup: the process's
// resident memory with every shared page divided among its sharers, the
// fair way to add up many processes running the same binary.
func pssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "Pss:" {
			return strconv.ParseInt(fields[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
}
