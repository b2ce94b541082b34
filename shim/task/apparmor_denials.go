package task

import (
	"context"
	"path"
	"strings"

	"github.com/containerd/log"

	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/profiles/apparmor"
	aadenials "github.com/stockade-dev/stockade/shim/denials/apparmor"
)

// appArmorDenialsStep files the AppArmor denials of a container confined by
// a generated profile in its pod's denial sink, beside the seccomp agent's
// records. It runs after the AppArmor and denials steps: the first names
// the profile, the second registers the container with the agent whose
// sinks the records go to. Containers without a generated profile (no
// AppArmor on the host, a Localhost profile) are not watched, and a shim
// whose containers never are never subscribes to the audit stream.
type appArmorDenialsStep struct{ w *aadenials.Watcher }

var _ hooks.Step = appArmorDenialsStep{}

func (appArmorDenialsStep) Name() string { return "apparmor-denials" }

func (s appArmorDenialsStep) Apply(ctx context.Context, c *hooks.Container) (hooks.Undo, error) {
	profile := c.Result.AppArmorProfile
	if !apparmor.ValidName(profile) || c.Spec == nil || c.Spec.Linux == nil {
		return nil, nil
	}
	cg := c.Spec.Linux.CgroupsPath
	// libcontainer's cgroupfs driver takes the path as it is; a systemd
	// "slice:prefix:name" path is not a directory to compare with.
	if !strings.HasPrefix(cg, "/") || strings.Contains(cg, ":") {
		log.G(ctx).WithFields(log.Fields{"container_id": c.ID, "cgroups_path": cg}).
			Info("apparmor denials of this container are not streamed: its cgroup path is not a cgroupfs path")
		return nil, nil
	}
	if err := s.w.Track(c.ID, profile, path.Clean(cg)); err != nil {
		// The profile still confines; only the records are off.
		log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("apparmor denials not streamed")
		return nil, nil
	}
	return func(context.Context) error {
		s.w.Untrack(c.ID)
		return nil
	}, nil
}
