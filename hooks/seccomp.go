package hooks

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/profiles/recorded"
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
//
// A recorded profile (stockade.dev/seccomp-profile, or the container's own
// where record.enforce_recorded is set) narrows the profile further. Record
// mode (stockade.dev/seccomp-mode: record, where record.allow permits it)
// runs the container under the node's mode and marks it in Result.Record
// for the shim to record.
type SeccompStep struct {
	// GOARCH is the architecture profiles are generated for; empty means
	// the shim's own.
	GOARCH string
	// Store opens the profile store; nil means no store (a container that
	// names a recorded profile fails).
	Store func(*config.Config) (ProfileStore, error)
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
	mode, record, err := modeFor(node, c.Annotations)
	if err != nil {
		return nil, err
	}
	// A Kubernetes pod's sandbox (pause) container gets the pod's
	// annotations too; it is neither recorded nor held to a workload's
	// profile. (A standalone container is its own sandbox, and is.)
	pause := c.Pod.Kubernetes && c.Pod.Sandbox
	record = record && !pause
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
	var recName string
	var recProfile *specs.LinuxSeccomp
	if !pause {
		if recName, recProfile, err = s.recordedProfile(c, node, goarch); err != nil {
			return nil, err
		}
	}
	compat, err := compatABIsFor(node, c.Annotations, goarch)
	if err != nil {
		return nil, err
	}
	policy := seccomp.Policy{Mode: mode, Arch: goarch, Pod: pod, Recorded: recProfile, CompatABIs: compat}
	profile, err := profileCache.Generate(c.Spec, policy)
	if err != nil {
		return nil, seccompError(err)
	}
	// what names a narrowed profile in errors; "" for the baseline itself.
	name, what := SeccompBaseline, ""
	switch {
	case recProfile != nil:
		// A recorded profile is an allow-list of names: it always narrows,
		// so there is no baseline to compare it with.
		name, what = "recorded:"+recName, "recorded profile "+recName
	case pod != nil:
		policy.Pod = nil
		base, err := profileCache.Generate(c.Spec, policy)
		if err != nil {
			return nil, seccompError(err)
		}
		if !reflect.DeepEqual(profile, base) {
			name, what = SeccompBaselineLocalhost, "pod seccomp profile (linux.seccomp)"
		}
	}
	// A narrowed profile can expand to a filter the kernel refuses; find
	// out now, with an error naming the profile, rather than from runc's
	// init. The baseline's size is covered by tests.
	if what != "" && seccomp.CompileSupported {
		if err := compileOnce(profile, nativeABI(goarch)); err != nil {
			return nil, fmt.Errorf("%s does not compile: %w: %w", what, err, errdefs.ErrInvalidArgument)
		}
	}
	if record {
		n, err := RecordName(c)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		c.Result.Record = n.String()
	}
	if c.Spec.Linux == nil {
		c.Spec.Linux = &specs.Linux{}
	}
	c.Spec.Linux.Seccomp = profile
	c.Result.SeccompMode, c.Result.SeccompProfile = string(mode), name
	logger.WithField("mode", mode).WithField("profile", name).WithField("abis", profile.Architectures).Debug("seccomp profile applied")
	return nil, nil
}

// profileCache holds the profiles this shim generated: a shim serves one
// pod, whose containers mostly repeat the inputs (see seccomp.Cache).
var profileCache = seccomp.NewCache(64)

// ShareSeccompProfiles makes the profile cache node-wide through dir, for
// this binary's generator (seccomp.Cache.SetDir): a pod's first container
// then reads what another pod's shim generated.
func ShareSeccompProfiles(dir string) error {
	id, err := seccomp.GeneratorID()
	if err != nil {
		return err
	}
	return profileCache.SetDir(dir, id)
}

// compiled remembers the narrowed profiles that compiled, by content, so a
// pod's containers pay libseccomp's compile in the shim once (it is paid
// again in each container's init, where runc compiles for real).
var compiled sync.Map // [sha256.Size]byte → struct{}

func compileOnce(p *specs.LinuxSeccomp, native specs.Arch) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	key := sha256.Sum256(append(b, native...))
	if _, ok := compiled.Load(key); ok {
		return nil
	}
	if _, err := seccomp.Compile(p, native); err != nil {
		return err
	}
	compiled.Store(key, struct{}{})
	return nil
}

// modeFor is the node's seccomp mode, or the pod's annotation where
// allowed, and whether the container is to be recorded.
func modeFor(node *config.Config, a Annotations) (seccomp.Mode, bool, error) {
	switch a.SeccompMode {
	case "":
		return seccomp.Mode(node.Seccomp.Mode), false, nil
	case SeccompModeRecord:
		if !node.Record.Allow {
			return "", false, fmt.Errorf("annotation %s: record mode is not allowed on this node (record.allow is false): %w",
				AnnotationSeccompMode, errdefs.ErrInvalidArgument)
		}
		// Recording runs under the node's own mode: it must not loosen
		// anything.
		return seccomp.Mode(node.Seccomp.Mode), true, nil
	}
	if !node.Seccomp.AllowModeAnnotation {
		return "", false, fmt.Errorf("annotation %s: pods may not set the seccomp mode on this node (seccomp.allow_mode_annotation is false): %w",
			AnnotationSeccompMode, errdefs.ErrInvalidArgument)
	}
	return seccomp.Mode(a.SeccompMode), false, nil
}

// compatABIsFor is the node's seccomp.compat_abis, or the pod's
// stockade.dev/seccomp-compat-abis where seccomp.allow_compat_abi_annotation
// permits it, checked against goarch.
func compatABIsFor(node *config.Config, a Annotations, goarch string) ([]string, error) {
	if !a.SeccompCompatABIsSet {
		if _, err := seccomp.FilterABIs(goarch, node.Seccomp.CompatABIs); err != nil {
			return nil, fmt.Errorf("key seccomp.compat_abis: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		return node.Seccomp.CompatABIs, nil
	}
	if !node.Seccomp.AllowCompatABIAnnotation {
		return nil, fmt.Errorf("annotation %s: pods may not choose compat ABIs on this node (seccomp.allow_compat_abi_annotation is false): %w",
			AnnotationSeccompCompatABIs, errdefs.ErrInvalidArgument)
	}
	if _, err := seccomp.FilterABIs(goarch, a.SeccompCompatABIs); err != nil {
		return nil, fmt.Errorf("annotation %s: %w: %w", AnnotationSeccompCompatABIs, err, errdefs.ErrInvalidArgument)
	}
	return a.SeccompCompatABIs, nil
}

// recordedProfile loads the recorded profile the container is held to:
// the one its annotation names, or its own where enforce_recorded is set
// and the store has one. A profile that is named but missing or corrupt
// fails the container: running it under less than its author asked for
// would be silent, and a corrupt profile is never applied.
func (s *SeccompStep) recordedProfile(c *Container, node *config.Config, goarch string) (string, *specs.LinuxSeccomp, error) {
	var n recorded.Name
	var err error
	switch {
	case c.Annotations.SeccompProfile != "":
		n, err = requestedProfile(c)
	case node.Record.EnforceRecorded:
		// A refused workload annotation fails the container: skipping it
		// would let the pod escape the profile its workload is held to.
		if err := checkWorkloadAnnotation(c); err != nil {
			return "", nil, err
		}
		if n, err = RecordName(c); err != nil {
			return "", nil, nil // no name of its own, so nothing recorded for it
		}
	default:
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	if s.Store == nil {
		return "", nil, fmt.Errorf("recorded profile %s: no profile store: %w", n, errdefs.ErrFailedPrecondition)
	}
	store, err := s.Store(node)
	if err != nil {
		return "", nil, fmt.Errorf("recorded profile %s: %w", n, err)
	}
	p, err := store.Load(n)
	if err != nil {
		if errdefs.IsNotFound(err) && c.Annotations.SeccompProfile == "" {
			return "", nil, nil
		}
		return "", nil, err
	}
	return n.String(), p.OCI(goarch), nil
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
