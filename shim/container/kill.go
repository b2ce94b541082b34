package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/containerd/log"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
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
//     that is still listed is ours to reap, so its pid cannot be reused yet.
func (c *Container) killAll(ctx context.Context, sig syscall.Signal) error {
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	st, err := c.lc.Status()
	if err != nil {
		return translate(err)
	}
	if st == libcontainer.Stopped {
		if pids, err := c.lc.Processes(); err != nil || len(pids) == 0 {
			return ErrProcessExited
		}
	}
	paused := st == libcontainer.Paused
	if sig == syscall.SIGKILL {
		done, err := c.cgroupKill()
		if err != nil {
			return err
		}
		if done {
			if paused {
				// A v1 freezer holds even SIGKILL until thawed.
				_ = c.lc.Resume()
			}
			return nil
		}
	}
	if !paused {
		if err := c.lc.Pause(); err != nil {
			// The container stopped between Status and Pause: nothing
			// runs in it that could fork.
			if !errors.Is(err, libcontainer.ErrNotRunning) {
				return fmt.Errorf("freeze before signalling all: %w", translate(err))
			}
		} else {
			defer func() {
				if err := c.lc.Resume(); err != nil {
					log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("thaw after signalling all")
				}
			}()
		}
	}
	pids, err := c.lc.Processes()
	if err != nil {
		return translate(err)
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
		_ = c.lc.Resume()
	}
	return nil
}

// cgroupKill writes cgroup.kill in the container's cgroup v2 directory;
// done is false where the kernel or the host has no cgroup.kill.
func (c *Container) cgroupKill() (done bool, _ error) {
	m, err := manager.New(c.lc.Config().Cgroups)
	if err != nil {
		return false, nil
	}
	dir := m.Path("")
	if dir == "" {
		return false, nil
	}
	err = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("kill all in %s: %w", dir, err)
}
