package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/log"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

// killAll signals every process in the container's cgroup.
//
// Listing the pids and then signalling them one by one is racy twice over: a
// process forked after the listing escapes the signal, and a listed process
// that exits (and is reaped) before its turn frees its pid for an unrelated
// host process, which then gets the signal. So, like libcontainer:
//   - SIGKILL goes through cgroup.kill where the kernel has it (cgroup v2,
//     or the unified hierarchy of a hybrid host, Linux 5.14+): one write,
//     atomic against forks, no pids involved;
//   - any other signal (or SIGKILL without cgroup.kill) is sent with the
//     cgroup frozen, so that nothing in it can fork or exit between the
//     listing and the last kill. A frozen process keeps its pid; a zombie
//     that is still listed has not been reaped, so its pid is not reused yet.
//
// The freezer is driven through the cgroup manager, not libcontainer's
// Pause, so that it also works once the init has exited and processes are
// left behind (a container without its own pid namespace), which is when
// containerd kills all.
func (c *Container) killAll(ctx context.Context, sig syscall.Signal) error {
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	m, err := c.cgroupManager()
	if err != nil {
		return err
	}
	if !m.Exists() {
		return ErrProcessExited
	}
	state, err := m.GetFreezerState()
	if err != nil {
		return fmt.Errorf("freezer state: %w", err)
	}
	paused := state == cgroups.Frozen
	if sig == syscall.SIGKILL {
		done, err := cgroupKill(m)
		if err != nil {
			return err
		}
		if done {
			if paused {
				// A v1 freezer holds even SIGKILL until thawed.
				c.thaw(ctx, m)
			}
			return nil
		}
	}
	if !paused {
		if err := m.Freeze(cgroups.Frozen); err != nil {
			// Signalling unfrozen is still better than not at all.
			log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("freeze before signalling all")
		}
		defer c.thaw(ctx, m)
	}
	pids, err := m.GetAllPids()
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	if len(pids) == 0 && c.initP.Status() >= Stopped {
		return ErrProcessExited
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	if paused && sig == syscall.SIGKILL {
		// The user's pause would hold the kill forever on cgroup v1.
		c.thaw(ctx, m)
	}
	return nil
}

func (c *Container) thaw(ctx context.Context, m cgroups.Manager) {
	if err := m.Freeze(cgroups.Thawed); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("thaw after signalling all")
	}
}

// cgroupManager is the container's cgroup manager, with the paths
// libcontainer placed it at.
func (c *Container) cgroupManager() (cgroups.Manager, error) {
	st, err := c.lc.State()
	if err != nil {
		return nil, fmt.Errorf("container %s state: %w", c.ID, translate(err))
	}
	m, err := manager.NewWithPaths(c.lc.Config().Cgroups, st.CgroupPaths)
	if err != nil {
		return nil, fmt.Errorf("cgroup manager of %s: %w", c.ID, err)
	}
	return m, nil
}

// cgroupKill writes cgroup.kill in the container's cgroup v2 directory;
// done is false where the kernel or the host has no cgroup.kill.
func cgroupKill(m cgroups.Manager) (done bool, _ error) {
	dir := m.Path("")
	if dir == "" {
		return false, nil
	}
	err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("kill all in %s: %w", dir, err)
}
