package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	cdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// defaultCaps is containerd's default capability set (oci.WithDefaultSpec),
// what a `ctr run` or CRI container without securityContext gets.
var defaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

func defaultCapSpec() *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
	}}}
}

// seccompLoadEnv makes the bench binary a one-shot child that loads the
// profile in the named file through runc's libcontainer and prints how long
// that took (RunSeccompLoadChild).
const seccompLoadEnv = "STOCKADE_BENCH_SECCOMP_LOAD"

// startPhases (issue 14) measures the parts of a container start that can
// be run on their own with the code the shim runs, interleaved:
//
//   - profile generation: the seccomp pipeline step on a container with
//     containerd's default capabilities, in this process;
//   - seccomp compile+load: libcontainer's InitSeccomp, which runc's init
//     runs inside every container after the spec pipeline, in a fresh
//     child process per sample, for the generated profile over x86_64 only
//     (the default since issue 14) and over x86_64+x86+x32 (before), with
//     containerd's RuntimeDefault (what runc loads) as the baseline.
//
// The rest of a start (userns and idmapped mounts, AppArmor, denial-agent
// registration, libcontainer create, init exec, start) runs inside the
// shim, which logs its phases; startBreakdown reports them.
func (b *runner) startPhases(ctx context.Context) ([]Metric, error) {
	n := b.cfg.N
	var metrics []Metric

	// Profile generation, in process: what the first container of a pod
	// pays (seccomp.Generate), and what later ones with the same inputs
	// pay through the pipeline step's per-shim cache.
	gen := map[string]*collector{"first": {}, "repeat": {}}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		_, err := seccomp.Generate(defaultCapSpec(), seccomp.Policy{Arch: "amd64"})
		d := time.Since(t0)
		if err != nil {
			return nil, err
		}
		gen["first"].samples = append(gen["first"].samples, float64(d)/float64(time.Microsecond))
		c := &hooks.Container{ID: "bench", Spec: defaultCapSpec(), Node: config.Default()}
		t0 = time.Now()
		_, err = (&hooks.SeccompStep{GOARCH: "amd64"}).Apply(ctx, c)
		d = time.Since(t0)
		if err != nil {
			return nil, err
		}
		if i > 0 { // the first call fills the cache
			gen["repeat"].samples = append(gen["repeat"].samples, float64(d)/float64(time.Microsecond))
		}
	}
	if len(gen["repeat"].samples) == 0 {
		gen["repeat"].err = errors.New("needs at least 2 iterations (-n)")
	}
	metrics = append(metrics, Metric{
		Group: "start phases (each run alone)", Name: "seccomp pipeline step, a pod's later containers (per-shim cache)", Unit: "µs",
		Baseline: "seccomp.Generate (a node's first pod after a start or an upgrade)", Stockade: gen["repeat"].outcome(), Runc: gen["first"].outcome(),
		Note: "in process; the rules are the same whatever ABIs are covered",
	})
	if m, err := nodeCachePhase(n, gen["first"]); err != nil {
		b.notMeasured = append(b.notMeasured, NotMeasured{Name: "seccomp profile from the node-wide cache", Reason: err.Error()})
	} else {
		metrics = append(metrics, m)
	}

	if !seccomp.CompileSupported {
		return metrics, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "stockade-bench-seccomp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	profiles := map[string]*specs.LinuxSeccomp{}
	for name, compat := range map[string][]string{"native": nil, "all": config.CompatABINames("amd64")} {
		p, err := seccomp.Generate(defaultCapSpec(), seccomp.Policy{Arch: "amd64", CompatABIs: compat})
		if err != nil {
			return nil, err
		}
		profiles[name] = p
	}
	profiles["runtimedefault"] = cdseccomp.DefaultProfile(defaultCapSpec())
	files := map[string]string{}
	for name, p := range profiles {
		data, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		files[name] = dir + "/" + name + ".json"
		if err := os.WriteFile(files[name], data, 0o600); err != nil {
			return nil, err
		}
	}
	b.cfg.Logf("seccomp compile+load: %d children per profile", n)
	load := map[string]*collector{}
	for name := range profiles {
		load[name] = &collector{}
	}
	order := []string{"native", "all", "runtimedefault"}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Rotate who goes first, as interleave does.
		for j := range order {
			name := order[(i+j)%len(order)]
			c := load[name]
			if c.err != nil {
				continue
			}
			d, err := seccompLoadChild(ctx, exe, files[name])
			if err != nil {
				c.err = err
				continue
			}
			c.samples = append(c.samples, ms(d))
		}
	}
	rules := func(p *specs.LinuxSeccomp) (n, args int) {
		for _, r := range p.Syscalls {
			n += len(r.Names)
			if len(r.Args) > 0 {
				args++
			}
		}
		return n, args
	}
	for _, name := range []string{"native", "all"} {
		label := map[string]string{"native": "x86_64 only (default)", "all": "x86_64+x86+x32 (compat ABIs on; the default before issue 14)"}[name]
		nr, na := rules(profiles[name])
		rr, ra := rules(profiles["runtimedefault"])
		metrics = append(metrics, Metric{
			Group: "start phases (each run alone)", Name: "seccomp compile+load in runc's libcontainer, generated profile over " + label, Unit: "ms",
			Baseline: "containerd RuntimeDefault (x86_64+x86+x32), as runc loads it",
			Stockade: load[name].outcome(), Runc: load["runtimedefault"].outcome(),
			Note: fmt.Sprintf("a fresh process per sample; rule names/argument rules: stockade %d/%d, RuntimeDefault %d/%d", nr, na, rr, ra),
		})
	}
	return metrics, nil
}

// seccompLoadChild runs the bench binary as a seccomp-load child and
// returns the duration it reports.
func seccompLoadChild(ctx context.Context, exe, profile string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), seccompLoadEnv+"="+profile)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("seccomp load child: %w: %s", err, oneLine(errOut.String()))
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("seccomp load child printed %q: %w", out.String(), err)
	}
	return time.Duration(ns), nil
}

// RunSeccompLoadChild is the child's side: when the environment names a
// profile it loads it (libcontainer's InitSeccomp: specconv, libseccomp
// compile, runc's ENOSYS patch, seccomp(2)), prints the nanoseconds that
// took and reports true; the caller then exits. The filter confines only
// this short-lived process.
func RunSeccompLoadChild() (bool, error) {
	path := os.Getenv(seccompLoadEnv)
	if path == "" {
		return false, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return true, err
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(data, &p); err != nil {
		return true, err
	}
	d, err := loadSeccomp(&p)
	if err != nil {
		return true, err
	}
	_, err = fmt.Println(int64(d))
	return true, err
}

// compatStartLatency compares container start with the generated filter
// over x86_64 only (the default) and over x86_64+x86+x32 (stockade before
// issue 14), with runc with and without containerd's RuntimeDefault as
// the other sides, all interleaved: the ratio to runc before and after,
// from one run.
func (b *runner) compatStartLatency(ctx context.Context) ([]Metric, error) {
	stockade := b.sides[0]
	orig, err := os.ReadFile(stockade.env.NodeConfig)
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if bytes.Contains(orig, []byte("[seccomp]")) {
		return nil, errors.New("node config already has a [seccomp] table; cannot switch compat ABIs")
	}
	allCfg := string(orig) + "\n[seccomp]\ncompat_abis = [\"x86\", \"x32\"]\n"
	defer func() {
		if err := os.WriteFile(stockade.env.NodeConfig, orig, 0o644); err != nil {
			b.cfg.Logf("restore node config: %v", err)
		}
	}()
	native := &side{name: "stockade x86_64 only", env: stockade.env, unavailable: stockade.unavailable}
	all := &side{name: "stockade x86_64+x86+x32", env: stockade.env, unavailable: stockade.unavailable}
	runc := b.sides[1]
	// The runc side as `ctr run` has it (no seccomp, like every other
	// container-start metric), and with containerd's RuntimeDefault, as
	// CRI gives pods that ask for it: the like-for-like comparison.
	runcRD := &side{name: "runc + RuntimeDefault", env: runc.env, unavailable: runc.unavailable}
	configs := map[*side]string{native: string(orig), all: allCfg}
	image, err := b.busybox(ctx)
	if err != nil {
		return nil, err
	}
	n := b.cfg.N
	b.cfg.Logf("compat ABIs: %d containers per side", n)
	var mu sync.Mutex
	totals := map[string][]float64{}
	starts := b.interleaveSides(ctx, []*side{native, all, runc, runcRD}, n, func(ctx context.Context, s *side) ([]float64, error) {
		if cfg, ok := configs[s]; ok {
			if err := os.WriteFile(s.env.NodeConfig, []byte(cfg), 0o644); err != nil {
				return nil, err
			}
		}
		var opts []oci.SpecOpts
		if s == runcRD {
			opts = append(opts, cdseccomp.WithDefaultProfile())
		}
		r, err := runTrue(ctx, s.env, image, opts...)
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
	var metrics []Metric
	for _, base := range []*side{runc, runcRD} {
		baseline := "runc (no seccomp, as ctr runs it)"
		if base == runcRD {
			baseline = "runc + containerd RuntimeDefault seccomp"
		}
		for _, s := range []*side{native, all} {
			for _, m := range []struct {
				name string
				cs   map[string]*collector
			}{{"task create→running", starts}, {"run --rm true (create→exit→deleted)", runs}} {
				metrics = append(metrics, Metric{
					Group: "seccomp ABIs", Name: m.name + ", 1 at a time, " + s.name, Unit: "ms", Baseline: baseline,
					Stockade: m.cs[s.name].outcome(), Runc: m.cs[base.name].outcome(),
					Note: "four sides interleaved in one run",
				})
			}
		}
	}
	return metrics, nil
}

// nodeCachePhase times what a pod's first container pays for its profile
// when another pod's shim generated it already: a fresh cache (as in a new
// shim) over the node-wide directory, so a file read and a JSON decode.
func nodeCachePhase(n int, generate *collector) (Metric, error) {
	dir, err := os.MkdirTemp("", "stockade-bench-seccomp-cache-")
	if err != nil {
		return Metric{}, err
	}
	defer os.RemoveAll(dir)
	id, err := seccomp.GeneratorID()
	if err != nil {
		return Metric{}, err
	}
	policy := seccomp.Policy{Arch: "amd64"}
	prime := seccomp.NewCache(1)
	if err := prime.SetDir(dir, id); err != nil {
		return Metric{}, err
	}
	if _, err := prime.Generate(defaultCapSpec(), policy); err != nil {
		return Metric{}, err
	}
	c := &collector{}
	for range n {
		fresh := seccomp.NewCache(1)
		if err := fresh.SetDir(dir, id); err != nil {
			return Metric{}, err
		}
		spec := defaultCapSpec()
		t0 := time.Now()
		_, err := fresh.Generate(spec, policy)
		d := time.Since(t0)
		if err != nil {
			return Metric{}, err
		}
		c.samples = append(c.samples, float64(d)/float64(time.Microsecond))
	}
	return Metric{
		Group: "start phases (each run alone)", Name: "seccomp profile from the node-wide cache, a pod's first container", Unit: "µs",
		Baseline: "seccomp.Generate (a node's first pod after a start or an upgrade)", Stockade: c.outcome(), Runc: generate.outcome(),
		Note: "in process, a fresh cache per sample as in a new shim: content hash, file read, JSON decode",
	}, nil
}
