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
			perPod, split, shims, err := b.measurePods(ctx, rs, s, count)
			if err != nil {
				c.err = err
				b.cfg.Logf("%s: %v", s.name, err)
				continue
			}
			c.samples = []float64{perPod}
			notes[s.name] = fmt.Sprintf("%s %d shims: %s", s.name, shims, split)
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
// summed shim PSS divided by count (MiB), how that splits into anonymous and
// file-backed memory, and the number of shims.
func (b *runner) measurePods(ctx context.Context, rs runtimeapi.RuntimeServiceClient, s *side, count int) (float64, string, int, error) {
	if err := b.waitNoShims(ctx); err != nil {
		return 0, "", 0, err
	}
	var pods []*pod
	defer func() {
		for _, p := range pods {
			p.remove(rs)
		}
	}()
	for i := range count {
		pctx, cancel := context.WithTimeout(ctx, opTimeout)
		p, err := startPod(pctx, rs, s.env, randomID(fmt.Sprintf("bench-mem%d", i)), true, false)
		cancel()
		if p != nil {
			pods = append(pods, p)
		}
		if err != nil {
			return 0, "", 0, err
		}
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return 0, "", 0, ctx.Err()
	}
	pids, err := s.env.ShimPIDs()
	if err != nil {
		return 0, "", 0, err
	}
	if len(pids) == 0 {
		return 0, "", 0, errors.New("no shim processes found")
	}
	var total pss
	for pid := range pids {
		p, err := pssOf(pid)
		if err != nil {
			return 0, "", 0, err
		}
		total.all += p.all
		total.anon += p.anon
		total.file += p.file
		if dir := os.Getenv(memDumpEnv); dir != "" {
			dumpSmaps(dir, s.name, count, pid)
		}
	}
	perPod := func(kib int64) float64 { return float64(kib) / 1024 / float64(count) }
	split := fmt.Sprintf("%.2f MiB anonymous + %.2f MiB file-backed per pod", perPod(total.anon), perPod(total.file))
	return perPod(total.all), split, len(pids), nil
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

// pss is a process's proportional set size in KiB: its resident memory with
// every shared page divided among its sharers, the fair way to add up many
// processes running the same binary. anon is the heap, stacks and the
// runtime's own (paid per pod whatever the pod count); file is the mapped
// binary and libraries (the page cache, shared by every shim of the binary).
type pss struct{ all, anon, file int64 }

// pssOf reads /proc/<pid>/smaps_rollup.
func pssOf(pid int) (pss, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return pss{}, err
	}
	defer f.Close()
	var p pss
	seen := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		var dst *int64
		switch fields[0] {
		case "Pss:":
			dst, seen = &p.all, true
		case "Pss_Anon:":
			dst = &p.anon
		case "Pss_File:":
			dst = &p.file
		default:
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return pss{}, fmt.Errorf("/proc/%d/smaps_rollup: %q: %w", pid, sc.Text(), err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return pss{}, err
	}
	if !seen {
		return pss{}, fmt.Errorf("no Pss in /proc/%d/smaps_rollup", pid)
	}
	return p, nil
}
