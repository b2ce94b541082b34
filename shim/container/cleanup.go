package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"github.com/opencontainers/runc/libcontainer"

	"github.com/stockade-dev/stockade/cri"
)

// Cleanup removes a container whose shim is gone, from on-disk state alone:
// it kills whatever is left in the container's cgroup, removes the cgroup and
// the libcontainer state, and unmounts the rootfs. It returns the pid the
// init had, 0 if unknown. Used by "containerd-shim-stockade-v1 delete".
func Cleanup(ctx context.Context, stateRoot, id, bundle string) (int, error) {
	var pid int
	lc, err := libcontainer.Load(stateRoot, id)
	switch {
	case err == nil:
		if st, err := lc.State(); err == nil {
			pid = st.InitProcessPid
		}
		_ = lc.Resume()
		_ = lc.Signal(syscall.SIGKILL)
		// The processes were children of the dead shim; whoever reaps them
		// now, libcontainer refuses to destroy a container that still has
		// any, so wait (bounded) for the cgroup to empty.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			pids, err := lc.Processes()
			if err != nil || len(pids) == 0 {
				break
			}
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if err := lc.Destroy(); err != nil {
			log.G(ctx).WithError(err).WithField("container_id", id).Warn("destroy container state")
		}
	case errors.Is(err, libcontainer.ErrNotExist), errors.Is(err, os.ErrNotExist):
	default:
		log.G(ctx).WithError(err).WithField("container_id", id).Warn("load container state")
	}
	if bundle != "" {
		if err := mount.UnmountRecursive(RootfsDir(bundle), 0); err != nil {
			return pid, fmt.Errorf("unmount rootfs of %s: %w", id, err)
		}
	}
	return pid, nil
}

// PodMembers lists, from libcontainer's state alone, the containers whose
// spec named sandboxID as their pod sandbox, with their bundle paths.
// specconv keeps a spec's annotations and bundle as labels in the state.
func PodMembers(stateRoot, sandboxID string) map[string]string {
	entries, err := os.ReadDir(stateRoot)
	if err != nil {
		return nil
	}
	members := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == sandboxID {
			continue
		}
		lc, err := libcontainer.Load(stateRoot, e.Name())
		if err != nil {
			continue
		}
		var inPod bool
		var bundle string
		for _, l := range lc.Config().Labels {
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case cri.AnnotationSandboxID:
				inPod = v == sandboxID
			case "bundle":
				bundle = v
			}
		}
		if inPod {
			members[e.Name()] = bundle
		}
	}
	return members
}
