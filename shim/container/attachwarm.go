package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/containerd/log"
	"github.com/opencontainers/cgroups"
)

// warming is set while a WarmCgroupAttach write is in flight.
var warming atomic.Bool

// WarmAtStartEnv, set to 1 in a shim server's environment by `shim start`,
// says that nothing will move the server to another cgroup (no ShimCgroup),
// so it may warm the cgroup attach lock as soon as it runs: a pod's first
// Create then finds the grace period passed or nearly.
const WarmAtStartEnv = "STOCKADE_WARM_CGROUP_ATTACH"

// WarmCgroupAttachAtStart warms the lock when `shim start` said it may (and
// clears the variable, which no child of the shim needs).
func WarmCgroupAttachAtStart(ctx context.Context) {
	if os.Getenv(WarmAtStartEnv) != "1" {
		return
	}
	_ = os.Unsetenv(WarmAtStartEnv)
	WarmCgroupAttach(ctx, false)
}

// WarmCgroupAttach starts, in the background, the wait that the kernel makes
// the next cgroup.procs write pay, so that libcontainer's writes for the
// container being created find it already paid.
//
// Why: every write to a cgroup.procs file takes the kernel's global
// cgroup_threadgroup_rwsem for writing, and taking that percpu rwsem after it
// has been idle waits for an RCU grace period (rcu_sync_enter): 10-15 ms on
// the 2-vCPU VM the benchmark runs on, paid by libcontainer when it moves the
// new init into the container's cgroup, while nsexec waits for its bootstrap
// data. For about one more grace period after a writer leaves, the next
// writer gets the lock at once. So the shim moves itself into the cgroup it
// is already in (no process changes cgroup) as a request arrives, and the
// grace period passes while the shim reads the spec, generates profiles and
// mounts the rootfs. The runc shim pays the whole wait in `runc create`.
// Kernels where the rwsem stays in its slow mode (cgroup mount option
// favordynmods) have no wait to hide, and the write is cheap there.
//
// For an exec (exec true) on cgroup v2 there is nothing to warm:
// libcontainer starts it straight into the cgroup (CLONE_INTO_CGROUP),
// which takes the lock only for reading.
//
// It never fails a request: errors are logged at debug level. One write at
// a time: a burst of requests shares the one grace period.
func WarmCgroupAttach(ctx context.Context, exec bool) {
	if exec && cgroups.IsCgroup2UnifiedMode() {
		return
	}
	if !warming.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer warming.Store(false)
		if err := attachSelf(); err != nil {
			log.G(ctx).WithError(err).Debug("warm cgroup attach")
		}
	}()
}

// attachSelf writes the shim's pid into the cgroup.procs of the cgroup the
// shim is in now. The cgroup is read right before the write, so the shim
// never moves back into a cgroup it was moved out of (containerd places it
// in ShimCgroup from `shim start`, before any request reaches it).
func attachSelf() error {
	dir, err := ownCgroupDir()
	if err != nil {
		return err
	}
	return cgroups.WriteCgroupProc(dir, os.Getpid())
}

// ownCgroupDir is the directory of this process's cgroup: in the unified
// hierarchy on cgroup v2, else in the first v1 hierarchy mounted of a few
// that every node has.
func ownCgroupDir() (string, error) {
	paths, err := cgroups.ParseCgroupFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	if cgroups.IsCgroup2UnifiedMode() {
		return filepath.Join("/sys/fs/cgroup", paths[""]), nil
	}
	for _, ss := range []string{"pids", "memory", "cpu", "devices"} {
		p, ok := paths[ss]
		if !ok {
			continue
		}
		mnt, root, err := cgroups.FindCgroupMountpointAndRoot("", ss)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || !filepath.IsLocal(rel) && rel != "." {
			continue
		}
		return filepath.Join(mnt, rel), nil
	}
	return "", fmt.Errorf("no cgroup of this process found in /proc/self/cgroup: %v", paths)
}
