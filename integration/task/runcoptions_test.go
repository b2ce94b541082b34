package task

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

// containerd's client sends containerd.runc.v1.Options to any shim, whatever
// its runtime type, when a caller asks for a user-namespaced container's I/O
// owner (WithUIDOwner/WithGIDOwner), a shim cgroup or the like. These tests
// are written from that contract: the way ctr, nerdctl and BuildKit use it.
// The remapped snapshot is containerd's work, not the shim's; the tests show
// that the shim runs on it as the runc shim does.

// userNSContainer creates a busybox container in its own user namespace with
// the given mappings over a remapped snapshot, as containerd's clients do.
func userNSContainer(t *testing.T, env *harness.Env, readonly bool, uidMap, gidMap []specs.LinuxIDMapping, args ...string) client.Container {
	t.Helper()
	ctx := env.Context()
	id := newID(t)
	img, err := env.Client.GetImage(ctx, harness.BusyboxImage)
	if err != nil {
		t.Fatal(err)
	}
	snap := client.WithUserNSRemappedSnapshot(id+"-snap", img, uidMap, gidMap)
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...), oci.WithUserNamespace(uidMap, gidMap)}
	if readonly {
		snap = client.WithUserNSRemappedSnapshotView(id+"-snap", img, uidMap, gidMap)
		specOpts = append(specOpts, oci.WithRootFSReadonly())
	}
	c, err := env.Client.NewContainer(ctx, id, client.WithImage(img), snap, env.NewContainerOpts(), client.WithNewSpec(specOpts...))
	if err != nil {
		t.Fatalf("new user-namespaced container: %v", err)
	}
	t.Cleanup(func() { env.RemoveContainer(c) })
	return c
}

// runWithOwner runs c's task with its I/O owned by the container's root, the
// way containerd's own user-namespace tests do, and returns exit code and
// output.
func runWithOwner(t *testing.T, env *harness.Env, c client.Container, uid, gid uint32) (uint32, string) {
	t.Helper()
	ctx := env.Context()
	var out safeBuffer
	task, err := c.NewTask(ctx, env.NewIO(nil, &out, &out), client.WithUIDOwner(uid), client.WithGIDOwner(gid))
	if err != nil {
		t.Fatalf("new task with runc options (IoUid/IoGid): %v", err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	st := <-statusC
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	return st.ExitCode(), out.String()
}

func TestUserNamespacedContainer(t *testing.T) {
	const host = 1000000
	single := []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: 65536}}
	// Two ranges, not adjacent on the host: root and the rest apart.
	multiple := []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: 1}, {ContainerID: 1, HostID: host + 100001, Size: 65535}}
	for _, tc := range []struct {
		name     string
		readonly bool
		maps     []specs.LinuxIDMapping
	}{
		{"writable", false, single},
		{"readonly", true, single},
		{"multiple-maps", false, multiple},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := harness.Get(t)
			// The remapped snapshot keeps set-user-ID bits (a chown would
			// clear them unless the snapshotter restores them).
			script := "cat /proc/self/uid_map; stat -c 'mode=%a' /bin/probe-setuid; " +
				"if touch /probe-rw 2>/dev/null; then echo rootfs=rw; else echo rootfs=ro; fi"
			c := userNSContainer(t, env, tc.readonly, tc.maps, tc.maps, "sh", "-c", script)
			code, out := runWithOwner(t, env, c, host, host)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			for _, m := range tc.maps {
				want := fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size)
				if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
					t.Errorf("uid_map lacks %q: %s", want, out)
				}
			}
			if !strings.Contains(out, "mode=4755") {
				t.Errorf("set-user-ID bit lost in the remapped snapshot: %s", out)
			}
			if want := map[bool]string{true: "rootfs=ro", false: "rootfs=rw"}[tc.readonly]; !strings.Contains(out, want) {
				t.Errorf("want %s: %s", want, out)
			}
		})
	}
}

// A shim told to live in a cgroup (runc options' ShimCgroup) is there.
func TestShimCgroup(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	rel := fmt.Sprintf("/stockade-shim-cg-%d", os.Getpid())
	dir := shimCgroupDir(t, rel)
	defer os.Remove(dir)

	id := newID(t)
	img, err := env.Client.GetImage(ctx, harness.BusyboxImage)
	if err != nil {
		t.Fatal(err)
	}
	opts := &options.Options{ShimCgroup: rel}
	if env.Handler == harness.HandlerRunc {
		base := env.RuntimeOpts().(*options.Options)
		opts.BinaryName, opts.Root = base.BinaryName, base.Root
	}
	c, err := env.Client.NewContainer(ctx, id, client.WithImage(img), client.WithNewSnapshot(id+"-snap", img),
		client.WithRuntime(env.Runtime, opts),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "3600")))
	if err != nil {
		t.Fatal(err)
	}
	defer env.RemoveContainer(c)
	env.Start(t, c)

	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	shims, err := env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range strings.Fields(string(procs)) {
		n, _ := strconv.Atoi(pid)
		if _, ok := shims[n]; ok {
			return
		}
	}
	t.Errorf("no shim among the processes of cgroup %s (%q); shims %v", rel, procs, shims)
}

// shimCgroupDir creates cgroup rel in the hierarchy the shim would be moved
// into: the unified one on a cgroup v2 host, the pids controller's on v1
// (containerd's cgroup1.StaticPath joins every mounted controller).
func shimCgroupDir(t *testing.T, rel string) string {
	t.Helper()
	root := "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		root = filepath.Join(root, "pids")
	}
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("cannot create cgroup %s: %v", dir, err)
	}
	return dir
}

// The shim's OOM score is containerd's plus one, as for the runc shim: under
// memory pressure the kernel picks a shim before containerd itself.
func TestShimOOMScore(t *testing.T) {
	env := harness.Get(t)
	c, _ := startLong(t, env)
	defer cleanupContainer(env, c)
	shims, err := env.ShimPIDs()
	if err != nil || len(shims) == 0 {
		t.Fatalf("shims: %v %v", shims, err)
	}
	cd, err := os.ReadFile("/proc/" + strconv.Itoa(env.ContainerdPID()) + "/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := strconv.Atoi(strings.TrimSpace(string(cd)))
	for pid := range shims {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
		if err != nil {
			continue
		}
		if got, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != want+1 {
			t.Errorf("shim %d oom_score_adj %d, want containerd's %d + 1", pid, got, want)
		}
	}
}

// A failed exec must not keep the shim alive: once the container is deleted
// the shim exits, whatever failed before.
func TestNoShimLeftAfterFailedExec(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	before, err := env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}
	c, task := startLong(t, env)
	spec, err := task.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pspec := *spec.Process
	pspec.Args = []string{"/no/such/binary"}
	if p, err := task.Exec(ctx, "doomed", &pspec, env.NewIO(nil, nil, nil)); err == nil {
		if err := p.Start(ctx); err == nil {
			st, _ := p.Wait(ctx)
			<-st
		}
		_, _ = p.Delete(ctx)
	}
	cleanupContainer(env, c)
	waitFor(t, "the container's shim to exit", func() bool {
		now, err := env.ShimPIDs()
		if err != nil {
			return false
		}
		for pid := range now {
			if _, old := before[pid]; !old {
				return false
			}
		}
		return true
	})
}
