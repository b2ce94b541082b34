package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/integration/harness"
)

// usernsStartLatency (metric 5) compares container start with stockade's
// user-namespace remapping on (the default) and off, interleaved: what the
// pod's ID range, the user namespace and the idmapped rootfs mount cost.
// Each standalone container gets its own shim, which reads the node config
// at its first Create, so the config is rewritten before every run.
func (b *runner) usernsStartLatency(ctx context.Context) ([]Metric, error) {
	stockade := b.sides[0]
	on := &side{name: "userns on", env: stockade.env, unavailable: stockade.unavailable}
	sw, err := b.newUsernsSwitch(on, "userns off")
	if err != nil {
		return nil, err
	}
	defer sw.restore()
	off, setConfig := sw.off, sw.set
	image, err := b.busybox(ctx)
	if err != nil {
		return nil, err
	}

	// A ratio near 1 means nothing if the switch did not switch: record
	// what each side's container saw as its uid_map.
	maps := map[*side]string{}
	for _, s := range []*side{on, off} {
		if s.unavailable != nil {
			continue
		}
		maps[s] = "?"
		if err := setConfig(s); err != nil {
			return nil, err
		}
		out, err := runBusybox(ctx, s.env, image, "cat", "/proc/self/uid_map")
		if err != nil {
			maps[s] = "error: " + oneLine(err.Error())
			continue
		}
		maps[s] = strings.Join(strings.Fields(out), " ")
	}

	n := b.cfg.N
	b.cfg.Logf("userns on/off: %d containers per side", n)
	var mu sync.Mutex
	totals := map[string][]float64{}
	starts := b.interleaveSides(ctx, []*side{on, off}, n, func(ctx context.Context, s *side) ([]float64, error) {
		if err := setConfig(s); err != nil {
			return nil, err
		}
		r, err := runTrue(ctx, s.env, image)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		totals[s.name] = append(totals[s.name], ms(r.total))
		mu.Unlock()
		return []float64{ms(r.start)}, nil
	})
	runs := map[string]*collector{}
	for name, c := range starts {
		runs[name] = &collector{samples: totals[name], err: c.err}
	}
	note := fmt.Sprintf("uid_map in the container: on %q, off %q", maps[on], maps[off])
	const baseline = "stockade, [userns] enabled = false"
	mk := func(name string, cs map[string]*collector) Metric {
		return Metric{
			Group: "user namespace on/off", Name: name, Unit: "ms", Baseline: baseline,
			Stockade: cs[on.name].outcome(), Runc: cs[off.name].outcome(), Note: note,
		}
	}
	return []Metric{
		mk("task create→running, 1 at a time", starts),
		mk("run --rm true (create→exit→deleted), 1 at a time", runs),
	}, nil
}

// usernsSwitch turns stockade's user-namespace remapping on and off between
// samples by rewriting the node config, which a shim reads at its first
// Create (so each pod, or standalone container, sees the config written
// before it started).
type usernsSwitch struct {
	off     *side // stockade's env with [userns] enabled = false
	configs map[*side][]byte
	restore func()
}

// newUsernsSwitch makes a side with remapping off next to on (a side on
// stockade's env, remapping on).
func (b *runner) newUsernsSwitch(on *side, offName string) (*usernsSwitch, error) {
	path := on.env.NodeConfig
	orig, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	onCfg, err := usernsConfig(string(orig), true)
	if err != nil {
		return nil, err
	}
	offCfg, err := usernsConfig(string(orig), false)
	if err != nil {
		return nil, err
	}
	off := &side{name: offName, env: on.env, unavailable: on.unavailable}
	return &usernsSwitch{
		off:     off,
		configs: map[*side][]byte{on: []byte(onCfg), off: []byte(offCfg)},
		restore: func() {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				b.cfg.Logf("restore node config: %v", err)
			}
		},
	}, nil
}

// set writes s's node config; for a side the switch does not know (runc's)
// it does nothing.
func (u *usernsSwitch) set(s *side) error {
	cfg, ok := u.configs[s]
	if !ok {
		return nil
	}
	return os.WriteFile(s.env.NodeConfig, cfg, 0o644)
}

// usernsConfig returns the node config with [userns] enabled set. When the
// config has no [userns] table, enabling returns it unchanged (enabled is
// the default) and disabling appends the table; when it has one, its
// enabled key is replaced, or added right under the table header.
func usernsConfig(orig string, enabled bool) (string, error) {
	value := fmt.Sprintf("enabled = %t", enabled)
	lines := strings.Split(orig, "\n")
	header := -1
	for i, l := range lines {
		if tomlTable(l) == "userns" {
			if header >= 0 {
				return "", fmt.Errorf("node config has two [userns] tables")
			}
			header = i
		}
	}
	if header < 0 {
		if enabled {
			return orig, nil
		}
		return strings.TrimRight(orig, "\n") + "\n\n[userns]\n" + value + "\n", nil
	}
	for i := header + 1; i < len(lines) && tomlTable(lines[i]) == ""; i++ {
		k, _, ok := strings.Cut(lines[i], "=")
		if ok && strings.TrimSpace(k) == "enabled" {
			lines[i] = value
			return strings.Join(lines, "\n"), nil
		}
	}
	lines = append(lines[:header+1], append([]string{value}, lines[header+1:]...)...)
	return strings.Join(lines, "\n"), nil
}

// tomlTable returns the name of the table a TOML line opens ("" if it opens
// none); array-of-tables headers count too, so that a scan for the keys of
// a table stops at them.
func tomlTable(line string) string {
	l := strings.TrimSpace(line)
	if c := strings.Index(l, "#"); c >= 0 {
		l = strings.TrimSpace(l[:c])
	}
	if !strings.HasPrefix(l, "[") || !strings.HasSuffix(l, "]") {
		return ""
	}
	name := strings.Trim(l, "[]")
	return strings.Join(strings.Fields(name), "")
}

// runBusybox runs args in a busybox container on env's runtime and returns
// its standard output.
func runBusybox(ctx context.Context, env *harness.Env, image client.Image, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	id := randomID("bench")
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs(args...)),
	)
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	defer cleanupContainer(env, ctr)
	var stdout, stderr bytes.Buffer
	task, err := ctr.NewTask(ctx, env.NewIO(nil, &stdout, &stderr))
	if err != nil {
		return "", fmt.Errorf("create task: %w", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return "", fmt.Errorf("wait task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return "", fmt.Errorf("start task: %w", err)
	}
	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		return "", fmt.Errorf("%s did not exit: %w", strings.Join(args, " "), ctx.Err())
	}
	if _, err := task.Delete(ctx); err != nil {
		return "", fmt.Errorf("delete task: %w", err)
	}
	if code, _, err := status.Result(); err != nil || code != 0 {
		return "", fmt.Errorf("%s exited %d (%v): %s", strings.Join(args, " "), code, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
