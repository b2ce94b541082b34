package task

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/hooks"
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

	mu       sync.Mutex
	node     *config.Config
	pipeline hooks.Pipeline
	closers  []func(context.Context)
}

// NewRuntime creates the runtime for a shim serving containerd namespace ns.
func NewRuntime(ns string) *Runtime { return &Runtime{ns: ns} }

// StateRoot is libcontainer's state root for this shim.
func (r *Runtime) StateRoot() string { return StateRoot(r.ns) }

// nodeConfig loads the node config named by the runtime options, once per
// shim: every container of a pod comes through the same runtime handler.
func (r *Runtime) nodeConfig(opts *anypb.Any) (*config.Config, error) {
	path, body, err := configSource(opts)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.node != nil {
		return r.node, nil
	}
	var c *config.Config
	switch {
	case body != "":
		c, err = config.Parse([]byte(body))
		if err != nil {
			err = fmt.Errorf("runtime option config_body: %w", err)
		}
	default:
		c, err = config.Load(path, path != "")
	}
	if err != nil {
		return nil, err
	}
	p, closers, err := buildPipeline(r.ns, c)
	if err != nil {
		return nil, err
	}
	r.node, r.pipeline, r.closers = c, p, closers
	return c, nil
}

// configSource reads containerd's runtime options for a non-runc runtime
// type: runtimeoptions.v1.Options{config_path, config_body}.
func configSource(opts *anypb.Any) (path, body string, err error) {
	if opts == nil || opts.GetTypeUrl() == "" {
		return "", "", nil
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		return "", "", fmt.Errorf("runtime options %s: %w: %w", opts.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	o, ok := v.(*runtimeoptions.Options)
	if !ok {
		return "", "", fmt.Errorf("runtime options: unsupported type %s (stockade takes %s with ConfigPath): %w",
			opts.GetTypeUrl(), "runtimeoptions.v1.Options", errdefs.ErrInvalidArgument)
	}
	return o.ConfigPath, string(o.ConfigBody), nil
}

// Intercept runs the hooks pipeline over one container's spec.
func (r *Runtime) Intercept(ctx context.Context, id, bundle string, opts *anypb.Any, spec *specs.Spec, sandboxPid func(string) int) (*hooks.Container, hooks.Undo, error) {
	node, err := r.nodeConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	ann, err := hooks.ParseAnnotations(spec.Annotations)
	if err != nil {
		return nil, nil, err
	}
	hc := &hooks.Container{
		ID:          id,
		Bundle:      bundle,
		Spec:        spec,
		Pod:         hooks.PodFromSpec(id, spec),
		Annotations: ann,
		Node:        node,
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
	undo, err := p.Apply(ctx, hc)
	if err != nil {
		return nil, nil, err
	}
	return hc, undo, nil
}

// RemapRootfs asks containerd's mount package to idmap the rootfs layers
// when the container runs in a remapped user namespace, so image files
// appear owned by the container's root without a chown.
func (r *Runtime) RemapRootfs(ms []mount.Mount, res hooks.Result) []mount.Mount {
	return remapRootfs(ms, res)
}

// Deleted is called after a container is deleted.
func (r *Runtime) Deleted(ctx context.Context, id string, pod hooks.Pod) {}

// Close releases the runtime's long-lived parts at shim shutdown.
func (r *Runtime) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i](ctx)
	}
	r.closers = nil
}

// CleanupDead releases what a dead shim held for container id (an ID range,
// a denial socket) — called by "shim delete" after the container is gone.
func CleanupDead(ctx context.Context, ns, id, bundle string) {}
