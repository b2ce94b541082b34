package hooks

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/node/apparmorhost"
	"github.com/stockade-dev/stockade/profiles/apparmor"
)

// AppArmorStep confines every container with a profile generated from its
// spec (profiles/apparmor), loaded for as long as a container uses it.
//
// On a host without AppArmor the container runs without a profile: runc
// cannot apply one there, so the spec's profile is cleared and the reason
// recorded, unless apparmor.required makes that an error. A pod's own
// (Localhost) profile replaces the generated one only where the node allows
// it with apparmor.allow_localhost_profiles.
type AppArmorStep struct {
	// Seams for tests; nil/"" means the real host.
	host   apparmorhost.Prober
	parser apparmorhost.Runner
	bootID string

	// skipLogged makes the "no AppArmor here" message appear once per shim,
	// not once per container.
	skipLogged sync.Once
}

var _ Step = (*AppArmorStep)(nil)

// NewAppArmorStep returns the step for the running host.
func NewAppArmorStep() *AppArmorStep { return &AppArmorStep{} }

// Name implements Step.
func (s *AppArmorStep) Name() string { return "apparmor" }

// Apply implements Step. The Undo it returns releases the container's use
// of the profile; the shim runs it when the container is deleted.
func (s *AppArmorStep) Apply(ctx context.Context, c *Container) (Undo, error) {
	logger := log.G(ctx).WithFields(log.Fields{"container_id": c.ID, "pod": c.Pod.Name, "namespace": c.Pod.Namespace})
	if c.Spec == nil || c.Spec.Process == nil {
		c.Result.AppArmorState = "skipped: the spec has no process"
		return nil, nil
	}
	node := c.Node
	if node == nil {
		node = config.Default()
	}
	host := s.prober(node)
	st := host.Probe()
	requested := strings.TrimPrefix(c.Spec.Process.ApparmorProfile, "localhost/")

	if !st.Enabled {
		if node.AppArmor.Required {
			return nil, fmt.Errorf("apparmor.required is set, but this host cannot enforce AppArmor: %s: %w", st.Reason, errdefs.ErrFailedPrecondition)
		}
		s.skipLogged.Do(func() {
			logger.WithField("reason", st.Reason).Info("apparmor unavailable, containers run without an apparmor profile")
		})
		if isLocalhostProfile(requested) {
			logger.WithField("requested_profile", requested).Warn("apparmor profile requested on a host without apparmor, ignored")
		}
		c.Spec.Process.ApparmorProfile = ""
		c.Result.AppArmorProfile = ""
		c.Result.AppArmorState = "skipped: " + st.Reason
		return nil, nil
	}

	if isLocalhostProfile(requested) {
		if node.AppArmor.AllowLocalhostProfiles {
			return nil, useLocalhostProfile(host, c, requested)
		}
		logger.WithField("requested_profile", requested).Warn("localhost apparmor profile refused (apparmor.allow_localhost_profiles is off), the generated profile applies")
	}

	mode := apparmor.Enforce
	if seccompMode(c) == "complain" {
		mode = apparmor.Complain
	}
	p, err := apparmor.Render(c.Spec, apparmor.Policy{Mode: mode, ABI: st.ABI, RuntimeLabel: st.Label})
	if err != nil {
		return nil, fmt.Errorf("render profile: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	lease, err := s.loader(node, host).Acquire(ctx, p, holderID(ctx, c.ID))
	if err != nil {
		return nil, fmt.Errorf("load profile %s: %w: %w", p.Name, err, errdefs.ErrInternal)
	}
	if lease.Skipped != "" {
		// AppArmor went away between the probe and the load.
		c.Spec.Process.ApparmorProfile = ""
		c.Result.AppArmorState = lease.State()
		return nil, nil
	}
	c.Spec.Process.ApparmorProfile = p.Name
	c.Result.AppArmorProfile = p.Name
	c.Result.AppArmorState = string(mode)
	logger.WithFields(log.Fields{"profile": p.Name, "mode": mode}).Debug("apparmor profile loaded")
	return lease.Release, nil
}

// ReleaseAppArmor drops container id's use of profile without the Undo
// from Apply, for a shim that restarted or cleans up after a dead one.
// ctx must carry the container's containerd namespace.
func ReleaseAppArmor(ctx context.Context, node *config.Config, profile, id string) error {
	if !apparmor.ValidName(profile) {
		// Not ours (skipped, or a Localhost profile): nothing to release.
		return nil
	}
	s := NewAppArmorStep()
	if err := s.loader(node, s.prober(node)).Release(ctx, profile, holderID(ctx, id)); err != nil {
		return fmt.Errorf("apparmor: release profile %s: %w", profile, err)
	}
	return nil
}

// useLocalhostProfile keeps the pod's own profile, which the node allows.
// It must already be loaded: runc would fail later with a less helpful
// error, and stockade does not load profiles it did not write.
func useLocalhostProfile(host apparmorhost.Prober, c *Container, name string) error {
	loaded, err := host.ProfileLoaded(name)
	if err != nil {
		return fmt.Errorf("check localhost profile %q: %w: %w", name, err, errdefs.ErrFailedPrecondition)
	}
	if !loaded {
		return fmt.Errorf("localhost profile %q is not loaded on this node: %w", name, errdefs.ErrFailedPrecondition)
	}
	c.Spec.Process.ApparmorProfile = name
	c.Result.AppArmorProfile = name
	c.Result.AppArmorState = "localhost"
	return nil
}

// isLocalhostProfile tells a profile the pod chose from the defaults that
// containerd or a client fill in. Those, "unconfined" included, get the
// generated profile: a pod cannot opt out of confinement.
func isLocalhostProfile(name string) bool {
	switch name {
	case "", "unconfined", "runtime/default", "docker-default", "cri-containerd.apparmor.d":
		return false
	}
	// A spec that already carries a generated name (a re-created
	// container) is re-rendered, not trusted.
	return !strings.HasPrefix(name, apparmor.NamePrefix)
}

// seccompMode is the mode the seccomp step chose, or the node default if
// it chose none.
func seccompMode(c *Container) string {
	if c.Result.SeccompMode != "" {
		return c.Result.SeccompMode
	}
	if c.Node != nil {
		return c.Node.Seccomp.Mode
	}
	return config.Default().Seccomp.Mode
}

// holderID names a container uniquely on the node: IDs are unique only
// within a containerd namespace.
func holderID(ctx context.Context, id string) string {
	ns, _ := namespaces.Namespace(ctx)
	return ns + "/" + id
}

func (s *AppArmorStep) prober(node *config.Config) apparmorhost.Prober {
	if s.host != nil {
		return s.host
	}
	return apparmorhost.Host{ParserPath: node.AppArmor.ParserPath}
}

func (s *AppArmorStep) loader(node *config.Config, host apparmorhost.Prober) *apparmorhost.Loader {
	return &apparmorhost.Loader{
		Host:     host,
		Parser:   s.parser,
		StateDir: node.AppArmorStateDir(),
		CacheDir: node.AppArmorCacheDir(),
		BootID:   s.bootID,
	}
}
