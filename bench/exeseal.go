package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/integration/harness"
)

// exeProtectionPath (metric 6) reports which CVE-2019-5736 protection
// libcontainer took for each side's container init: a sealed overlayfs over
// the runtime binary's directory (no copy), or a memfd copy of the whole
// binary (runc_cloned). A created but not started task's init waits in
// `runc init`, still running that binary, so /proc/<pid>/exe names it. What
// the path costs is in the create latency measured above; this only names
// it. It adds notes, no metrics.
func (b *runner) exeProtectionPath(ctx context.Context) ([]Metric, error) {
	image, err := b.busybox(ctx)
	if err != nil {
		return nil, err
	}
	b.cfg.Logf("exe protection path")
	for _, s := range b.sides {
		var note string
		if s.unavailable != nil {
			note = "unavailable (" + oneLine(s.unavailable.Error()) + ")"
		} else if path, err := initExe(ctx, s.env, image); err != nil {
			note = "could not tell: " + oneLine(err.Error())
		} else {
			note = path
		}
		bin := "containerd-shim-stockade-v1, re-executed as init"
		if s.name == harness.HandlerRunc {
			bin = "runc"
		}
		b.notes = append(b.notes, fmt.Sprintf("exe protection (CVE-2019-5736) for the container init, %s (%s): %s", s.name, bin, note))
	}
	return nil, nil
}

// initExe creates a task on env without starting it and describes what its
// init process runs.
func initExe(ctx context.Context, env *harness.Env, image client.Image) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	id := randomID("bench-exe")
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id, image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("true")),
	)
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	defer cleanupContainer(env, ctr)
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		return "", fmt.Errorf("create task: %w", err)
	}
	pid := task.Pid()
	if pid == 0 {
		return "", fmt.Errorf("task %s has no pid", id)
	}
	return describeExe(int(pid))
}

// Filesystem magic numbers (statfs f_type) of where an exe can live.
const (
	overlayfsMagic = 0x794c7630
	tmpfsMagic     = 0x01021994 // shmem: memfds too
)

// describeExe names the kind of binary /proc/<pid>/exe is and its path.
func describeExe(pid int) (string, error) {
	proc := fmt.Sprintf("/proc/%d", pid)
	// The init's name tells that it is still in the runtime's init; once it
	// exec'd the workload, exe would be `true` from the image.
	comm, _ := os.ReadFile(proc + "/comm")
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return "", err
	}
	var st unix.Statfs_t
	fsType := "?"
	if err := unix.Statfs(proc+"/exe", &st); err == nil {
		fsType = fmt.Sprintf("fs 0x%x", uint64(st.Type))
		switch uint64(st.Type) {
		case overlayfsMagic:
			fsType = "on overlayfs"
		case tmpfsMagic:
			fsType = "on shmem"
		}
	}
	var size string
	if fi, err := os.Stat(proc + "/exe"); err == nil {
		size = fmt.Sprintf(", %.1f MiB", float64(fi.Size())/(1<<20))
	}
	var kind string
	switch {
	case strings.HasPrefix(exe, "/memfd:runc_cloned"):
		kind = "memfd copy of the whole binary"
	case uint64(st.Type) == overlayfsMagic && filepath.Dir(exe) == "/":
		kind = "sealed overlayfs (zero-copy; a detached mount, so the path is relative to it)"
	default:
		kind = "neither memfd copy nor sealed overlayfs"
	}
	return fmt.Sprintf("%s — /proc/<pid>/exe = %q, %s%s, comm %q",
		kind, exe, fsType, size, strings.TrimSpace(string(comm))), nil
}
