package container

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupPath is the container's cgroup relative to the hierarchy root.
func (c *Container) cgroupPath() string {
	cg := c.lc.Config().Cgroups
	if cg.Path != "" {
		return cg.Path
	}
	return filepath.Join("/", cg.Parent, cg.Name)
}

// Stats returns containerd's metrics type for the host's cgroup version
// (cgroup1 stats.Metrics or cgroup2 stats.Metrics), as the runc shim does.
func (c *Container) Stats(ctx context.Context) (any, error) {
	path := c.cgroupPath()
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		return m.Stat()
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	return cg.Stat(cgroup1.IgnoreNotExist)
}

// Update applies new resource limits. The OCI resources are converted with
// runc's own converter (on a copy of the spec), so update and create can
// never disagree on what a field means.
func (c *Container) Update(ctx context.Context, r *specs.LinuxResources) error {
	if r == nil {
		return fmt.Errorf("resources: missing: %w", errdefs.ErrInvalidArgument)
	}
	spec := *c.Spec
	linux := *spec.Linux
	linux.Resources = r
	spec.Linux = &linux
	cg, err := specconv.CreateCgroupConfig(&specconv.CreateOpts{CgroupName: c.ID, Spec: &spec}, nil)
	if err != nil {
		return fmt.Errorf("resources: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	cfg := c.lc.Config()
	// Devices are not updatable here; keep the rules the container started with.
	cg.Resources.Devices = cfg.Cgroups.Resources.Devices
	cfg.Cgroups.Resources = cg.Resources
	if err := c.lc.Set(cfg); err != nil {
		return fmt.Errorf("update resources: %w", translate(err))
	}
	return nil
}
