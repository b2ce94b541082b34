package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/integration/harness"
)

// recordOverhead (record mode) times the getpid loop in a recorded
// container against the same loop in enforce mode, and in an enforce-mode
// container while another container is being recorded: the eBPF program
// runs on every syscall of the node while it is attached, recorded or not.
// All three are stockade; the "runc" column holds plain enforce mode.
func (b *runner) recordOverhead(ctx context.Context) ([]Metric, error) {
	iterations, repeats := 2_000_000, 5
	if b.cfg.Smoke {
		iterations, repeats = 200_000, 1
	}
	stockade := b.sides[0]
	if stockade.unavailable != nil {
		return nil, nil
	}
	orig, err := os.ReadFile(stockade.env.NodeConfig)
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	store, err := os.MkdirTemp("", "stockade-bench-profiles-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(store)
	cfg := strings.TrimRight(string(orig), "\n") + fmt.Sprintf("\n\n[record]\nallow = true\nstore_dir = %q\n", store)
	if err := os.WriteFile(stockade.env.NodeConfig, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	defer func() {
		if err := os.WriteFile(stockade.env.NodeConfig, orig, 0o644); err != nil {
			b.cfg.Logf("restore node config: %v", err)
		}
	}()
	record := oci.WithAnnotations(map[string]string{"stockade.dev/seccomp-mode": "record", "stockade.dev/workload": "bench"})
	image, err := b.env.Client.GetImage(namespaces.WithNamespace(ctx, harness.Namespace), harness.SysbenchImage)
	if err != nil {
		return nil, fmt.Errorf("sysbench image: %w", err)
	}
	busybox, err := b.busybox(ctx)
	if err != nil {
		return nil, err
	}

	enforce := seccompConfig{name: "enforce", side: stockade}
	recorded := seccompConfig{name: "record", side: stockade, opts: []oci.SpecOpts{record}}
	// "neighbour" is an enforce-mode container timed while a recorded
	// sleeper keeps the program attached.
	neighbour := seccompConfig{name: "neighbour", side: stockade}
	configs := []seccompConfig{enforce, recorded, neighbour}
	b.cfg.Logf("record mode: getpid, %d iterations x %d runs per config", iterations, repeats)
	cs := b.rounds(ctx, configs, repeats, func(ctx context.Context, c seccompConfig) (float64, error) {
		if c.name == neighbour.name {
			sl, err := startSleeper(ctx, stockade.env, busybox, record)
			if err != nil {
				return 0, fmt.Errorf("recorded sleeper: %w", err)
			}
			defer sl.close()
		}
		return sysbenchNsPerOp(ctx, c, image, "getpid", strconv.Itoa(iterations))
	})
	profiles, _ := filepath.Glob(filepath.Join(store, harness.Namespace, "bench", "*.json"))
	note := fmt.Sprintf("recorded profiles written: %d", len(profiles))
	mk := func(name, which string) Metric {
		return Metric{
			Group: "record mode", Name: name, Unit: "ns/op", Baseline: "stockade, enforce mode",
			Stockade: cs[which].outcome(), Runc: cs["enforce"].outcome(), Note: note,
		}
	}
	return []Metric{
		mk("getpid() in a recorded container", "record"),
		mk("getpid() elsewhere on the node while a container is recorded", "neighbour"),
	}, nil
}
