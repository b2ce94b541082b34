package hooks

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// Profile names reported in Result.SeccompProfile.
const (
	// SeccompBaseline is the generated profile as is.
	SeccompBaseline = "stockade-baseline"
	// SeccompBaselineLocalhost is the generated profile narrowed by the
	// pod's own (Localhost) profile.
	SeccompBaselineLocalhost = "stockade-baseline+localhost"
	// SeccompUnconfined marks a container running without seccomp because
	// its namespace is in seccomp.unconfined_namespaces.
	SeccompUnconfined = "unconfined"
)

// SeccompStep applies stockade's generated seccomp profile to every
// container, whatever the pod asked for:
//
//   - no profile in the spec (CRI's Unconfined, or no seccomp setting at
//     all): the generated profile, unless the pod's Kubernetes namespace is
//     listed in seccomp.unconfined_namespaces;
//   - a profile in the spec (CRI's RuntimeDefault or Localhost): treated as
//     the pod's own and intersected with the generated one. RuntimeDefault
//     allows a superset of the baseline, so it yields the baseline itself,
//     and no guess about which of the two the spec holds is needed.
//
// The mode is the node's, or the pod's stockade.dev/seccomp-mode annotation
// where seccomp.allow_mode_annotation permits it.
type SeccompStep struct {
	// GOARCH is the architecture profiles are generated for; empty means
	// the shim's own.
	GOARCH string
}

var _ Step = (*SeccompStep)(nil)

// NewSeccompStep returns the step for the architecture the shim runs on.
func NewSeccompStep() *SeccompStep { return &SeccompStep{} }

// Name implements Step.
func (s *SeccompStep) Name() string { return "seccomp" }

// Apply implements Step. It builds the whole profile before touching the
// spec, so a failure leaves the spec as it was. Nothing is held, so there
// is no Undo.
func (s *SeccompStep) Apply(ctx context.Context, c *Container) (Undo, error) {
	if c.Spec == nil {
		return nil, fmt.Errorf("container %s has no spec: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	node := c.Node
	if node == nil {
		node = config.Default()
	}
	mode, err := modeFor(node, c.Annotations)
	if err != nil {
		return nil, err
	}
	var pod *specs.LinuxSeccomp
	if c.Spec.Linux != nil && !disabled(c.Spec.Linux.Seccomp) {
		pod = c.Spec.Linux.Seccomp
	}
	logger := log.G(ctx).WithField("container_id", c.ID).WithField("pod", c.Pod.Name).WithField("namespace", c.Pod.Namespace)
	if pod == nil && c.Pod.Kubernetes && slices.Contains(node.Seccomp.UnconfinedNamespaces, c.Pod.Namespace) {
		if c.Spec.Linux != nil {
			c.Spec.Linux.Seccomp = nil
		}
		c.Result.SeccompMode, c.Result.SeccompProfile = "", SeccompUnconfined
		logger.Info("seccomp unconfined: namespace is listed in seccomp.unconfined_namespaces")
		return nil, nil
	}
	goarch := s.GOARCH
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	policy := seccomp.Policy{Mode: mode, Arch: goarch, Pod: pod}
	profile, err := seccomp.Generate(c.Spec, policy)
	if err != nil {
		return nil, seccompError(err)
	}
	name := SeccompBaseline
	if pod != nil {
		policy.Pod = nil
		base, err := seccomp.Generate(c.Spec, policy)
		if err != nil {
			return nil, seccompError(err)
		}
		if !reflect.DeepEqual(profile, base) {
			name = SeccompBaselineLocalhost
			// A pod profile can expand to a filter the kernel refuses; find
			// out now, with an error naming the profile, rather than from
			// runc's init. The baseline's size is covered by tests.
			if seccomp.CompileSupported {
				if _, err := seccomp.Compile(profile, nativeABI(goarch)); err != nil {
					return nil, fmt.Errorf("pod seccomp profile (linux.seccomp) does not compile: %w: %w", err, errdefs.ErrInvalidArgument)
				}
			}
		}
	}
	if c.Spec.Linux == nil {
		c.Spec.Linux = &specs.Linux{}
	}
	c.Spec.Linux.Seccomp = profile
	c.Result.SeccompMode, c.Result.SeccompProfile = string(mode), name
	logger.WithField("mode", mode).WithField("profile", name).Debug("seccomp profile applied")
	return nil, nil
}

// modeFor is the node's seccomp mode, or the pod's annotation where allowed.
func modeFor(node *config.Config, a Annotations) (seccomp.Mode, error) {
	if a.SeccompMode == "" {
		return seccomp.Mode(node.Seccomp.Mode), nil
	}
	if !node.Seccomp.AllowModeAnnotation {
		return "", fmt.Errorf("annotation %s: pods may not set the seccomp mode on this node (seccomp.allow_mode_annotation is false): %w",
			AnnotationSeccompMode, errdefs.ErrInvalidArgument)
	}
	return seccomp.Mode(a.SeccompMode), nil
}

// disabled reports a profile runc treats as no seccomp at all.
func disabled(p *specs.LinuxSeccomp) bool {
	return p == nil || (p.DefaultAction == "" && len(p.Syscalls) == 0)
}

func nativeABI(goarch string) specs.Arch {
	if goarch == "arm64" {
		return specs.ArchAARCH64
	}
	return specs.ArchX86_64
}

// seccompError gives generator errors their errdefs kind.
func seccompError(err error) error {
	switch {
	case errors.Is(err, seccomp.ErrInvalidProfile):
		return fmt.Errorf("pod seccomp profile (linux.seccomp): %w: %w", err, errdefs.ErrInvalidArgument)
	case errors.Is(err, seccomp.ErrInvalidPolicy):
		return fmt.Errorf("seccomp policy: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("generate seccomp profile: %w", err)
}
