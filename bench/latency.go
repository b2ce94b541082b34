package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// lifecycle is the timing of one `run --rm true`.
type lifecycle struct {
	start time.Duration // task create → task running (shim start included)
	total time.Duration // container create → exited → task and container deleted
}

func randomID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (b *runner) busybox(ctx context.Context) (client.Image, error) {
	if b.image == nil {
		img, err := b.env.Client.GetImage(namespaces.WithNamespace(ctx, harness.Namespace), harness.BusyboxImage)
		if err != nil {
			return nil, fmt.Errorf("busybox image: %w", err)
		}
		b.image = img
	}
	return b.image, nil
}

// runTrue runs `true` in busybox through the containerd client on env's
// runtime, the way `ctr run --rm` does, and times it.
func runTrue(ctx context.Context, env *harness.Env, image client.Image, opts ...oci.SpecOpts) (_ lifecycle, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	id := randomID("bench")

	t0 := time.Now()
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs("true")}, opts...)...),
	)
	if err != nil {
		return lifecycle{}, fmt.Errorf("create container: %w", err)
	}
	defer func() {
		if retErr != nil {
			cleanupContainer(env, ctr)
		}
	}()

	tCreate := time.Now()
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return lifecycle{}, fmt.Errorf("create task: %w", err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return lifecycle{}, fmt.Errorf("wait task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return lifecycle{}, fmt.Errorf("start task: %w", err)
	}
	tRunning := time.Now()

	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		return lifecycle{}, fmt.Errorf("`true` did not exit: %w", ctx.Err())
	}
	if code, _, err := status.Result(); err != nil || code != 0 {
		return lifecycle{}, fmt.Errorf("`true` exited with %d (%v)", code, err)
	}
	if _, err := task.Delete(ctx); err != nil {
		return lifecycle{}, fmt.Errorf("delete task: %w", err)
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return lifecycle{}, fmt.Errorf("delete container: %w", err)
	}
	return lifecycle{start: tRunning.Sub(tCreate), total: time.Since(t0)}, nil
}

// cleanupContainer removes a container left behind by a failed measurement
// with a fresh context, since the measurement's may have expired.
func cleanupContainer(env *harness.Env, ctr client.Container) {
	ctx, cancel := context.WithTimeout(env.Context(), 30*time.Second)
	defer cancel()
	if task, err := ctr.Task(ctx, nil); err == nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
	}
	_ = ctr.Delete(ctx, client.WithSnapshotCleanup)
}

// containerLatency measures `run --rm true` one at a time and ten at once.
func (b *runner) containerLatency(ctx context.Context) ([]Metric, error) {
	image, err := b.busybox(ctx)
	if err != nil {
		return nil, err
	}
	var metrics []Metric
	for _, par := range []int{1, 10} {
		rounds := b.cfg.N
		if par > 1 {
			// Ten samples per round: a third of the rounds gives more
			// samples than the sequential run, in about the same time.
			rounds = max(1, b.cfg.N/3)
		}
		b.cfg.Logf("container latency: %d in parallel, %d rounds per side", par, rounds)
		var mu sync.Mutex
		totals := map[string][]float64{}
		starts := b.interleave(ctx, rounds, func(ctx context.Context, s *side) ([]float64, error) {
			results := make([]lifecycle, par)
			errs := make([]error, par)
			var wg sync.WaitGroup
			for i := range par {
				wg.Go(func() { results[i], errs[i] = runTrue(ctx, s.env, image) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return nil, err
			}
			var st []float64
			mu.Lock()
			defer mu.Unlock()
			for _, r := range results {
				st = append(st, ms(r.start))
				totals[s.name] = append(totals[s.name], ms(r.total))
			}
			return st, nil
		})
		// The totals come from the same runs: same errors, other samples.
		runs := map[string]*collector{}
		for name, c := range starts {
			runs[name] = &collector{samples: totals[name], err: c.err}
		}
		label := fmt.Sprintf("%d at a time", par)
		if par > 1 {
			label = fmt.Sprintf("%d in parallel", par)
		}
		// The runc side runs ctr's default spec, which has no seccomp;
		// stockade always loads its filter. The "seccomp ABIs" group has
		// runc with RuntimeDefault too.
		const note = "runc side without seccomp, as ctr runs it; stockade with its filter"
		createdM := metric("container start", "task create→running, "+label, "ms", "runc", starts)
		runM := metric("container start", "run --rm true (create→exit→deleted), "+label, "ms", "runc", runs)
		createdM.Note, runM.Note = note, note
		metrics = append(metrics, createdM, runM)
	}
	return metrics, nil
}

// podLatency measures CRI RunPodSandbox alone, and a pod with one busybox
// container up to running.
func (b *runner) podLatency(ctx context.Context) ([]Metric, error) {
	conn, err := b.env.DialCRI()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	n := max(2, b.cfg.N*2/3)
	b.cfg.Logf("pod latency: %d pods per side", n)

	var mu sync.Mutex
	withContainer := map[string][]float64{}
	sandboxIDs := map[string]bool{} // stockade's, to tell its lines in the log
	offPods := map[string]bool{}    // names of the pods with remapping off, left out of the phases
	// runc's pods as CRI runs them when the pod asks for nothing (no
	// filter), and with RuntimeDefault for the sandbox and the container,
	// as the kubelet asks for with seccompDefault or under the restricted
	// Pod Security Standard: the like-for-like comparison.
	runc := b.sides[1]
	runcRD := &side{name: "runc + RuntimeDefault", env: runc.env, unavailable: runc.unavailable}
	// And stockade's own pods with user-namespace remapping off: what the
	// pod's ID range, its user namespace and the idmapped mounts cost. A
	// pod's shim reads the node config at its first Create, so the config
	// is written before every stockade pod.
	sw, err := b.newUsernsSwitch(b.sides[0], "stockade, userns off")
	if err != nil {
		return nil, err
	}
	defer sw.restore()
	usernsOff := sw.off
	sandbox := b.interleaveSides(ctx, append(slices.Clone(b.sides), runcRD, usernsOff), n, func(ctx context.Context, s *side) ([]float64, error) {
		ctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		if err := sw.set(s); err != nil {
			return nil, err
		}
		t0 := time.Now()
		name := randomID(podPrefix)
		if s == usernsOff {
			mu.Lock()
			offPods[name] = true
			mu.Unlock()
		}
		p, err := startPod(ctx, rs, s.env, name, true, s == runcRD)
		if p != nil {
			defer p.remove(rs)
		}
		if err != nil {
			return nil, err
		}
		mu.Lock()
		withContainer[s.name] = append(withContainer[s.name], ms(time.Since(t0)))
		if s.name == harness.HandlerStockade {
			sandboxIDs[p.id] = true
		}
		mu.Unlock()
		return []float64{ms(p.sandboxReady.Sub(t0))}, nil
	})
	full := map[string]*collector{}
	for name, c := range sandbox {
		full[name] = &collector{samples: withContainer[name], err: c.err}
	}
	metrics := []Metric{
		metric("pod start (CRI)", "RunPodSandbox", "ms", "runc", sandbox),
		metric("pod start (CRI)", "pod + 1 container running", "ms", "runc", full),
	}
	for _, m := range []struct {
		name string
		cs   map[string]*collector
	}{{"RunPodSandbox", sandbox}, {"pod + 1 container running", full}} {
		metrics = append(metrics, Metric{
			Group: "pod start (CRI)", Name: m.name + ", runc with RuntimeDefault", Unit: "ms",
			Baseline: "runc + containerd RuntimeDefault seccomp (sandbox and container)",
			Stockade: m.cs[harness.HandlerStockade].outcome(), Runc: m.cs[runcRD.name].outcome(),
			Note: "four sides interleaved in one run (the fourth: stockade with userns off); the rows above are the same stockade samples against runc without a filter",
		})
	}
	for _, m := range []struct {
		name string
		cs   map[string]*collector
	}{{"RunPodSandbox (CRI)", sandbox}, {"pod + 1 container running (CRI)", full}} {
		metrics = append(metrics, Metric{
			Group: "user namespace on/off", Name: m.name, Unit: "ms",
			Baseline: "stockade, [userns] enabled = false",
			Stockade: m.cs[harness.HandlerStockade].outcome(), Runc: m.cs[usernsOff.name].outcome(),
			Note: "the same stockade samples as the pod start rows; four sides interleaved in one run",
		})
	}
	// Where stockade's part of those starts went, as its shims logged it.
	byClass, err := shimPhases(b.env.LogPath(), func(id, pod string) string {
		switch {
		case !strings.HasPrefix(pod, podPrefix+"-"), offPods[pod]:
			return ""
		case sandboxIDs[id]:
			return "sandbox"
		default:
			return "container"
		}
	})
	if err != nil {
		b.notMeasured = append(b.notMeasured, NotMeasured{Name: "shim Create phases of CRI pods", Reason: err.Error()})
		return metrics, nil
	}
	metrics = append(metrics, b.phaseMetrics("shim Create phases (shim log, CRI pod sandbox)", byClass["sandbox"])...)
	return append(metrics, b.phaseMetrics("shim Create phases (shim log, CRI pod's container)", byClass["container"])...), nil
}

// podPrefix starts the names of the pods podLatency starts.
const podPrefix = "bench-pod"

// pod is a CRI pod started by the benchmark.
type pod struct {
	id           string
	sandboxReady time.Time
}

// startPod runs a pod sandbox on env's handler and, if withContainer, one
// busybox container sleeping in it; runtimeDefault gives both containerd's
// RuntimeDefault seccomp profile. A non-nil pod is returned whenever a
// sandbox exists, so the caller can remove it even after an error.
func startPod(ctx context.Context, rs runtimeapi.RuntimeServiceClient, env *harness.Env, name string, withContainer, runtimeDefault bool) (*pod, error) {
	cfg := env.NewPodConfig(name)
	var containerSC *runtimeapi.LinuxContainerSecurityContext
	if runtimeDefault {
		rd := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Seccomp: rd}
		containerSC = &runtimeapi.LinuxContainerSecurityContext{Seccomp: rd}
	}
	resp, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: env.Handler})
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	p := &pod{id: resp.PodSandboxId, sandboxReady: time.Now()}
	if !withContainer {
		return p, nil
	}
	c, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image:    &runtimeapi.ImageSpec{Image: harness.BusyboxImage},
			Command:  []string{"sleep", "3600"},
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: containerSC},
		},
		SandboxConfig: cfg,
	})
	if err != nil {
		return p, fmt.Errorf("create container: %w", err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return p, fmt.Errorf("start container: %w", err)
	}
	return p, nil
}

// remove stops and removes the pod with its containers, with a fresh
// context: it runs after the measurement's context may have expired.
func (p *pod) remove(rs runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, _ = rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id})
	_, _ = rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id})
}
