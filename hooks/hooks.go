// Package hooks is stockade's interception pipeline: ordered steps that
// rewrite the OCI spec of one container under the node policy before the
// container is created. These are not OCI runtime hooks; they run in the shim,
// before libcontainer sees the spec, so a pod author cannot remove them.
//
// Steps are small and ordered; each may hold a resource (an ID range, a loaded
// AppArmor profile) that it gives back through the Undo it returns, so a
// failure in a later step, or in container creation itself, leaks nothing.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
)

// Container is everything a step may read or change for one container.
type Container struct {
	// ID is the containerd container (task) ID.
	ID string
	// ContainerdNamespace is the containerd namespace the container is in.
	ContainerdNamespace string
	// Bundle is the OCI bundle directory containerd created.
	Bundle string
	// Spec is the OCI spec; steps edit it in place.
	Spec *specs.Spec
	// Pod is the Kubernetes identity parsed from the CRI annotations.
	Pod cri.Pod
	// Annotations are the parsed, validated stockade.dev/* annotations.
	Annotations Annotations
	// Node is the node configuration in force.
	Node *config.Config
	// SandboxPid is the pid of the pod's sandbox init when this container
	// joins a pod this shim already runs (0 for the sandbox itself and for
	// standalone containers). Steps use it to join the pod's namespaces.
	SandboxPid int

	// Results steps leave for the shim and for later steps.
	Result Result
	// Timings is how long each step took, in order, filled by
	// Pipeline.Apply: the shim logs them with the container's other start
	// phases, so the cost of each layer is visible on a node.
	Timings []Timing
}

// Timing is one step's wall time.
type Timing struct {
	Step     string
	Duration time.Duration
}

// Result is what the pipeline decided, for the shim (to wire the container)
// and for operators (stockade check, the demo, the logs).
type Result struct {
	// SeccompMode is "enforce", "complain", or "" when seccomp is off for this pod.
	SeccompMode string
	// SeccompProfile names the profile applied (e.g. "stockade-baseline").
	SeccompProfile string
	// AppArmorProfile is the profile set on the process, or "".
	AppArmorProfile string
	// AppArmorState explains AppArmor's state ("enforce", "skipped: ...").
	AppArmorState string
	// UIDMap/GIDMap are the user-namespace mappings, nil when not remapped.
	UIDMap, GIDMap []specs.LinuxIDMapping
	// DenialListener is the seccomp notify listener socket path, "" if none.
	DenialListener string
	// Record names the profile this container's recording is stored
	// under ("namespace/workload/container"), "" when it is not recorded.
	Record string `json:",omitempty"`
}

// Undo gives back what a step took. It must be safe to call once.
type Undo func(ctx context.Context) error

// Step is one stage of the pipeline.
type Step interface {
	// Name is a short lowercase identifier used in logs and errors.
	Name() string
	// Apply edits c.Spec. On error the step must have released whatever it
	// took itself; on success it returns an Undo (or nil) for rollback.
	Apply(ctx context.Context, c *Container) (Undo, error)
}

// Pipeline runs steps in order.
type Pipeline []Step

// Apply runs every step. If one fails, the Undos of the steps before it run
// in reverse order and the error names the failing step. On success the
// combined Undo is returned for the caller to run if creation fails later, or
// when the container is deleted.
func (p Pipeline) Apply(ctx context.Context, c *Container) (Undo, error) {
	var undos []Undo
	rollback := func(ctx context.Context) error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			if err := undos[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		undos = nil
		return errors.Join(errs...)
	}
	for _, s := range p {
		began := time.Now()
		undo, err := s.Apply(ctx, c)
		c.Timings = append(c.Timings, Timing{Step: s.Name(), Duration: time.Since(began)})
		if err != nil {
			if rerr := rollback(ctx); rerr != nil {
				log.G(ctx).WithError(rerr).WithField("container_id", c.ID).Warn("rollback after failed step")
			}
			return nil, fmt.Errorf("%s: %w", s.Name(), err)
		}
		if undo != nil {
			undos = append(undos, undo)
		}
	}
	return rollback, nil
}
