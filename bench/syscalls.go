package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/integration/harness"
)

// seccompConfig is one way of running the syscall loops.
type seccompConfig struct {
	name string
	side *side
	opts []oci.SpecOpts
}

// sysbenchResult is the line hack/sysbench/sysbench.c prints.
type sysbenchResult struct {
	Mode       string  `json:"mode"`
	Iterations int64   `json:"iterations"`
	NsPerOp    float64 `json:"ns_per_op"`
}

// syscallOverhead times a getpid loop (allowed by number: the filter's cache
// bitmap answers) and a personality(0xffffffff) loop (argument-checked: the
// filter program runs) under stockade's generated profile, containerd's
// RuntimeDefault profile (with runc) and no seccomp at all (with runc).
func (b *runner) syscallOverhead(ctx context.Context) ([]Metric, error) {
	iterations, repeats := 2_000_000, 5
	if b.cfg.Smoke {
		iterations, repeats = 200_000, 1
	}
	stockade, runc := b.sides[0], b.sides[1]
	configs := []seccompConfig{
		// No seccomp in the spec: whatever filter the container gets is
		// the one stockade generates.
		{name: "stockade", side: stockade},
		{name: "runtime-default", side: runc, opts: []oci.SpecOpts{seccomp.WithDefaultProfile()}},
		{name: "unconfined", side: runc},
	}
	image, err := b.env.Client.GetImage(namespaces.WithNamespace(ctx, harness.Namespace), harness.SysbenchImage)
	if err != nil {
		return nil, fmt.Errorf("sysbench image: %w", err)
	}

	// Which filters each config really got: a ratio near 1 against "no
	// seccomp" means little if the profile was never installed.
	filters := map[string]string{}
	for _, c := range configs {
		filters[c.name] = "?"
		if c.side.unavailable != nil {
			continue
		}
		out, err := runSysbench(ctx, c, image, "seccomp")
		var st struct {
			Filters int `json:"filters"`
		}
		if err == nil && json.Unmarshal(out, &st) == nil {
			filters[c.name] = strconv.Itoa(st.Filters)
		}
	}
	note := func(baseline string) string {
		return fmt.Sprintf("seccomp filters installed: stockade %s, baseline %s", filters["stockade"], filters[baseline])
	}

	var metrics []Metric
	for _, mode := range []string{"getpid", "personality"} {
		b.cfg.Logf("syscall overhead: %s, %d iterations x %d runs per config", mode, iterations, repeats)
		cs := b.rounds(ctx, configs, repeats, func(ctx context.Context, c seccompConfig) (float64, error) {
			return sysbenchNsPerOp(ctx, c, image, mode, strconv.Itoa(iterations))
		})
		vsDefault := map[string]*collector{harness.HandlerStockade: cs["stockade"], harness.HandlerRunc: cs["runtime-default"]}
		vsNone := map[string]*collector{harness.HandlerStockade: cs["stockade"], harness.HandlerRunc: cs["unconfined"]}
		label := mode + "()"
		if mode == "personality" {
			label = "personality(0xffffffff), argument-checked"
		}
		withDefault := metric("syscall overhead", label+" vs RuntimeDefault", "ns/op", "runc + containerd RuntimeDefault seccomp", vsDefault)
		withDefault.Note = note("runtime-default")
		withNone := metric("syscall overhead", label+" vs no seccomp", "ns/op", "runc, no seccomp", vsNone)
		withNone.Note = note("unconfined")
		metrics = append(metrics, withDefault, withNone)
	}
	return metrics, nil
}

// rounds runs measure for every config, repeats times, rotating which goes
// first so that drift spreads over all of them; after its first error a
// config is skipped. Collectors are keyed by config name.
func (b *runner) rounds(ctx context.Context, configs []seccompConfig, repeats int, measure func(context.Context, seccompConfig) (float64, error)) map[string]*collector {
	cs := map[string]*collector{}
	for _, c := range configs {
		cs[c.name] = &collector{err: c.side.unavailable}
	}
	for r := range repeats {
		for k := range configs {
			c := configs[(r+k)%len(configs)]
			col := cs[c.name]
			if col.err != nil {
				continue
			}
			v, err := measure(ctx, c)
			if err != nil {
				col.err = fmt.Errorf("failed after %d good samples: %w", len(col.samples), err)
				b.cfg.Logf("%s: %v", c.name, err)
				continue
			}
			col.samples = append(col.samples, v)
		}
	}
	return cs
}

// sysbenchNsPerOp runs one sysbench loop under c and returns its ns/op.
func sysbenchNsPerOp(ctx context.Context, c seccompConfig, image client.Image, args ...string) (float64, error) {
	out, err := runSysbench(ctx, c, image, args...)
	if err != nil {
		return 0, err
	}
	var res sysbenchResult
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("sysbench output %q: %w", out, err)
	}
	return res.NsPerOp, nil
}

// runSysbench runs one sysbench container with args and returns its
// standard output.
func runSysbench(ctx context.Context, c seccompConfig, image client.Image, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	env := c.side.env
	id := randomID("sysbench")

	specOpts := append([]oci.SpecOpts{
		oci.WithImageConfig(image),
		oci.WithProcessArgs(append([]string{"/bin/sysbench"}, args...)...),
	}, c.opts...)
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	defer cleanupContainer(env, ctr)

	var stdout, stderr bytes.Buffer
	task, err := ctr.NewTask(ctx, env.NewIO(nil, &stdout, &stderr))
	if err != nil {
		return nil, fmt.Errorf("create task: %w", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start task: %w", err)
	}
	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		return nil, fmt.Errorf("sysbench did not exit: %w", ctx.Err())
	}
	// Delete closes the task's IO, so every byte of output has arrived.
	if _, err := task.Delete(ctx); err != nil {
		return nil, fmt.Errorf("delete task: %w", err)
	}
	if code, _, err := status.Result(); err != nil || code != 0 {
		return nil, fmt.Errorf("sysbench %s exited %d (%v): %s", strings.Join(args, " "), code, err, strings.TrimSpace(stderr.String()))
	}
	return bytes.TrimSpace(stdout.Bytes()), nil
}
