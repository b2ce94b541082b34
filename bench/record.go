package bench

import (
	"context"
	"encoding/json"
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
	cs := map[string]*collector{}
	for _, c := range configs {
		cs[c.name] = &collector{}
	}
	b.cfg.Logf("record mode: getpid, %d iterations x %d runs per config", iterations, repeats)
	for r := range repeats {
		for k := range configs {
			c := configs[(r+k)%len(configs)]
			col := cs[c.name]
			if col.err != nil {
				continue
			}
			var sl *sleeper
			if c.name == "neighbour" {
				if sl, err = startSleeper(ctx, stockade.env, busybox, record); err != nil {
					col.err = fmt.Errorf("recorded sleeper: %w", err)
					continue
				}
			}
			out, err := runSysbench(ctx, c, image, "getpid", strconv.Itoa(iterations))
			if sl != nil {
				sl.close()
			}
			var res sysbenchResult
			if err == nil {
				if err = json.Unmarshal(out, &res); err != nil {
					err = fmt.Errorf("sysbench output %q: %w", out, err)
				}
			}
			if err != nil {
				col.err = fmt.Errorf("failed after %d good samples: %w", len(col.samples), err)
				b.cfg.Logf("%s: %v", c.name, err)
				continue
			}
			col.samples = append(col.samples, res.NsPerOp)
		}
	}
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
