package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/shim/container"
	"github.com/stockade-dev/stockade/shim/record"
)

// StateRootBase is where libcontainer keeps per-container state, one
// directory per containerd namespace (as the runc shim does under
// /run/containerd/runc/<namespace>).
const StateRootBase = "/run/stockade"

// StateRoot is the libcontainer state root for a containerd namespace.
func StateRoot(ns string) string { return filepath.Join(StateRootBase, ns) }

// Runtime is everything the task service needs beyond one container: the
// node config, and the hooks pipeline built from it with its long-lived
// parts (the denial agent, the ID-range allocator).
type Runtime struct {
	ns string
	// containerd is containerd's gRPC socket, for the image a recorded
	// profile names.
	containerd string

	mu       sync.Mutex
	node     *config.Config
	pipeline hooks.Pipeline
	closers  []func(context.Context)
	recorder *record.Recorder
}

// NewRuntime creates the runtime for a shim serving containerd namespace ns.
func NewRuntime(ns, containerdAddress string) *Runtime {
	return &Runtime{ns: ns, containerd: containerdAddress}
}

// StateRoot is libcontainer's state root for this shim.
func (r *Runtime) StateRoot() string { return StateRoot(r.ns) }

// nodeConfig loads the node config named by the runtime options, once per
// shim: every container of a pod comes through the same runtime handler.
func (r *Runtime) nodeConfig(ctx context.Context, opts *anypb.Any) (*config.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.node != nil {
		return r.node, nil
	}
	c, err := loadNodeConfig(opts)
	if err != nil {
		return nil, err
	}
	// The pipeline (and the denial agent in it) outlives this first
	// Create: keep the request's values (log fields) but not its
	// cancellation or deadline.
	p, closers, err := buildPipeline(context.WithoutCancel(ctx), r.ns, c)
	if err != nil {
		return nil, err
	}
	r.node, r.pipeline, r.closers = c, p, closers
	return c, nil
}

// configSource reads the node config's source from containerd's runtime
// options. Two types arrive:
//   - runtimeoptions.v1.Options{config_path, config_body}: what CRI sends a
//     non-runc runtime type whose handler has an options block;
//   - containerd.runc.v1.Options: what containerd's client sends any shim
//     for a user-namespaced container (IoUid/IoGid), a shim cgroup or an OOM
//     score, whatever the runtime type. It names no config, so the node
//     config comes from $STOCKADE_CONFIG or the default path. Its fields are
//     honoured where they mean something to stockade: ShimCgroup by the
//     manager at start; IoUid/IoGid are what the container's root maps to,
//     which is how stockade already owns the stdio pipes.
func configSource(opts *anypb.Any) (path, body string, err error) {
	if opts == nil || opts.GetTypeUrl() == "" {
		return "", "", nil
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		return "", "", fmt.Errorf("runtime options %s: %w: %w", opts.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	switch o := v.(type) {
	case *runtimeoptions.Options:
		return o.ConfigPath, string(o.ConfigBody), nil
	case *runcoptions.Options:
		return "", "", nil
	}
	return "", "", fmt.Errorf("runtime options: unsupported type %s (stockade takes runtimeoptions.v1.Options or containerd.runc.v1.Options): %w",
		opts.GetTypeUrl(), errdefs.ErrInvalidArgument)
}

// Intercept runs the hooks pipeline over one container's spec.
func (r *Runtime) Intercept(ctx context.Context, id, bundle string, opts *anypb.Any, spec *specs.Spec, sandboxPid func(string) int) (*hooks.Container, hooks.Undo, error) {
	began := time.Now()
	node, err := r.nodeConfig(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	if err := saveOptions(bundle, opts); err != nil {
		return nil, nil, err
	}
	// The node config (read, and the pipeline with its denial agent built,
	// at a shim's first container) is timed with the steps.
	setup := hooks.Timing{Step: "config", Duration: time.Since(began)}
	ann, err := hooks.ParseAnnotations(spec.Annotations)
	if err != nil {
		return nil, nil, err
	}
	hc := &hooks.Container{
		ID:                  id,
		ContainerdNamespace: r.ns,
		Bundle:              bundle,
		Spec:                spec,
		Pod:                 cri.PodFromAnnotations(id, spec.Annotations),
		Annotations:         ann,
		Node:                node,
	}
	if !hc.Pod.Sandbox {
		hc.SandboxPid = sandboxPid(hc.Pod.SandboxID)
	}
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{
		"container_id": id, "pod": hc.Pod.Name, "namespace": hc.Pod.Namespace,
	}))
	r.mu.Lock()
	p := r.pipeline
	r.mu.Unlock()
	hc.Timings = append(hc.Timings, setup)
	undo, err := p.Apply(ctx, hc)
	if err != nil {
		return nil, nil, err
	}
	began = time.Now()
	if err := saveResult(bundle, hc.Result); err != nil {
		_ = undo(ctx)
		return nil, nil, err
	}
	hc.Timings = append(hc.Timings, hooks.Timing{Step: "result", Duration: time.Since(began)})
	return hc, undo, nil
}

// RemapRootfs asks containerd's mount package to idmap the rootfs layers
// when the container runs in a remapped user namespace, so image files
// appear owned by the container's root without a chown.
func (r *Runtime) RemapRootfs(bundle string, ms []mount.Mount, res hooks.Result) ([]mount.Mount, error) {
	return remapRootfs(bundle, ms, res)
}

// Close releases the runtime's long-lived parts at shim shutdown.
func (r *Runtime) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i](ctx)
	}
	r.closers = nil
	if r.recorder != nil {
		r.recorder.Close(ctx)
	}
}

// resultFile keeps what the pipeline decided for a container in its bundle,
// for operators and for "shim delete" (which releases what it names).
const resultFile = "stockade-result.json"

func saveResult(bundle string, res hooks.Result) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, resultFile), data, 0o600)
}

// optionsFile keeps a container's runtime options in its bundle, so that
// "shim delete" after a dead shim finds the node config it ran under.
const optionsFile = "stockade-options.pb"

func saveOptions(bundle string, opts *anypb.Any) error {
	if opts == nil {
		return nil
	}
	data, err := proto.Marshal(opts)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, optionsFile), data, 0o600)
}

// CleanupDead releases what a dead shim held for container id (its pod's ID
// range) — called by "shim delete" after the container itself is gone.
func CleanupDead(ctx context.Context, ns, id, bundle string) {
	var opts anypb.Any
	if data, err := os.ReadFile(filepath.Join(bundle, optionsFile)); err == nil {
		if err := proto.Unmarshal(data, &opts); err != nil {
			log.G(ctx).WithError(err).WithField("container_id", id).Warn("read saved runtime options")
		}
	}
	node, err := loadNodeConfig(&opts)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container_id", id).Warn("node config for cleanup")
		return
	}
	ann, err := container.ReadAnnotations(bundle)
	if err != nil {
		return
	}
	var res hooks.Result
	if data, err := os.ReadFile(filepath.Join(bundle, resultFile)); err == nil {
		_ = json.Unmarshal(data, &res)
	}
	if res.AppArmorProfile != "" {
		if err := hooks.ReleaseAppArmor(ctx, node, res.AppArmorProfile, id); err != nil {
			log.G(ctx).WithError(err).WithField("container_id", id).Warn("release apparmor profile")
		}
	}
	if pod := cri.PodFromAnnotations(id, ann); pod.Sandbox {
		if err := hooks.ReleaseUserNSIn(ctx, node, ns, pod.SandboxID); err != nil {
			log.G(ctx).WithError(err).WithField("container_id", id).Warn("release userns range")
		}
	}
}

// loadNodeConfig loads the node config the runtime options name: an inline
// config_body, the file at config_path, or the default path.
func loadNodeConfig(opts *anypb.Any) (*config.Config, error) {
	path, body, err := configSource(opts)
	if err != nil {
		return nil, err
	}
	if body != "" {
		c, err := config.Parse([]byte(body))
		if err != nil {
			return nil, fmt.Errorf("runtime option config_body: %w", err)
		}
		return c, nil
	}
	return config.Load(path, path != "")
}
