// Package userns tests stockade's per-pod user-namespace remapping end to
// end: real containers through a private containerd. These are stockade's
// own promises; with STOCKADE_TEST_RUNTIME=runc every test skips.
package userns

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/node/idalloc"
	"github.com/stockade-dev/stockade/profiles/userns"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func stockadeEnv(t *testing.T) *harness.Env {
	t.Helper()
	env := harness.Get(t)
	env.RequireStockade(t)
	return env
}

var newID = harness.NewID

// start runs args in a new container and returns the started task.
func start(t *testing.T, env *harness.Env, id string, args []string, opts ...oci.SpecOpts) (client.Container, client.Task) {
	t.Helper()
	c := env.NewContainer(t, id, args, opts...)
	return c, env.Start(t, c)
}

// hostRange reads the uid map of a host pid: the range its root maps to.
func hostRange(t *testing.T, pid uint32) userns.Range {
	t.Helper()
	uid, gid, err := idalloc.ReadProcIDMaps("/proc", int(pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(uid) != 1 || uid[0].ContainerID != 0 || !userns.SameMappings(uid, gid) {
		t.Fatalf("pid %d maps uid %v gid %v; want one identical range from 0", pid, uid, gid)
	}
	return userns.Range{Start: uid[0].HostID, Size: uid[0].Size}
}

func leaseDir(t *testing.T, env *harness.Env) string {
	c, err := config.Load(env.NodeConfig, true)
	if err != nil {
		t.Fatal(err)
	}
	return c.UserNSStateDir()
}

func leases(t *testing.T, env *harness.Env) map[string]bool {
	t.Helper()
	alloc, err := idalloc.NewAllocator(leaseDir(t, env), userns.DefaultPool())
	if err != nil {
		t.Fatal(err)
	}
	ls, err := alloc.Leases()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range ls {
		out[l.Key] = true
	}
	return out
}

// key is the lease key of container id in the test namespace.
func key(id string) string { return harness.Namespace + "@" + id }

func TestRootIsUnprivilegedOnHost(t *testing.T) {
	env := stockadeEnv(t)
	_, task := start(t, env, newID("root"), []string{"sleep", "3600"})
	r := hostRange(t, task.Pid())
	if r.Start < userns.MinHostID || r.Size != userns.RangeSize {
		t.Fatalf("range %v: want %d IDs above %d", r, userns.RangeSize, userns.MinHostID)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), fmt.Sprintf("\nUid:\t%d\t", r.Start)) {
		t.Errorf("host view of the container's root is not uid %d:\n%s", r.Start, status)
	}
	// Inside, the same process is root.
	ctx := env.Context()
	spec, _ := task.Spec(ctx)
	ps := *spec.Process
	ps.Args = []string{"sh", "-c", "id -u; cat /proc/self/uid_map; touch /written-by-root"}
	out := execOut(t, env, task, &ps)
	if !strings.HasPrefix(out, "0\n") || !strings.Contains(out, strconv.Itoa(int(r.Start))) {
		t.Errorf("inside: %q; want uid 0 and the map to %d", out, r.Start)
	}
}

func execOut(t *testing.T, env *harness.Env, task client.Task, ps *specs.Process) string {
	t.Helper()
	ctx := env.Context()
	var out strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	p, err := task.Exec(ctx, newID("x"), ps, env.NewIO(nil, w, w))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := p.Wait(ctx)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := <-sc
	_, _ = p.Delete(ctx)
	if st.ExitCode() != 0 {
		t.Errorf("exec %v exited %d: %s", ps.Args, st.ExitCode(), out.String())
	}
	mu.Lock()
	defer mu.Unlock()
	return out.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestFiftyPodsInParallelGetDisjointRanges(t *testing.T) {
	env := stockadeEnv(t)
	const n = 50
	ranges := make([]userns.Range, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, task := start(t, env, newID("par"), []string{"sleep", "3600"})
			ranges[i] = hostRange(t, task.Pid())
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if ranges[i].Overlaps(ranges[j]) {
				t.Errorf("pods %d and %d overlap: %v %v", i, j, ranges[i], ranges[j])
			}
		}
	}
}

func TestVolumeOwnershipThroughIDMappedMount(t *testing.T) {
	env := stockadeEnv(t)
	vol := t.TempDir()
	if err := os.Chmod(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "from-host"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(vol, "from-host"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	_, task := start(t, env, newID("vol"), []string{"sleep", "3600"}, oci.WithMounts([]specs.Mount{{
		Destination: "/vol", Type: "bind", Source: vol, Options: []string{"rbind", "rw"},
	}}))
	ctx := env.Context()
	spec, _ := task.Spec(ctx)
	ps := *spec.Process
	ps.Args = []string{"sh", "-c", "stat -c %u:%g /vol/from-host; echo hi > /vol/from-container; stat -c %u /vol/from-container"}
	out := execOut(t, env, task, &ps)
	if !strings.HasPrefix(out, "1000:1000\n0\n") {
		t.Errorf("inside the volume: %q; want the host file as 1000:1000 and the new file as 0", out)
	}
	// On disk, the container's root wrote as uid 0, as Kubernetes'
	// idmapped volumes of user-namespace pods do.
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "from-container"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("file written in the volume is %d:%d on disk, want 0:0", st.Uid, st.Gid)
	}
}

// TestNoRecursiveChown checks that the image's files keep their owners on
// disk: the rootfs is idmapped, never chowned.
func TestNoRecursiveChown(t *testing.T) {
	env := stockadeEnv(t)
	_, task := start(t, env, newID("chown"), []string{"sleep", "3600"})
	r := hostRange(t, task.Pid())
	snaps, _ := filepath.Glob(filepath.Join(env.Dir, "root", "io.containerd.snapshotter.v1.overlayfs", "snapshots", "*", "fs", "bin", "busybox"))
	if len(snaps) == 0 {
		t.Fatal("no busybox in any snapshot: layout changed?")
	}
	for _, p := range snaps {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid >= r.Start {
			t.Errorf("%s is owned by %d: the image was chowned into the pod's range", p, st.Uid)
		}
	}
	// And the container's root sees its image as its own.
	ctx := env.Context()
	spec, _ := task.Spec(ctx)
	ps := *spec.Process
	ps.Args = []string{"stat", "-c", "%u", "/bin/busybox"}
	if out := execOut(t, env, task, &ps); strings.TrimSpace(out) != "0" {
		t.Errorf("inside, /bin/busybox is owned by %q, want 0", out)
	}
}

func TestRangeReleasedOnDeleteAndAfterShimKill(t *testing.T) {
	env := stockadeEnv(t)
	id := newID("rel")
	c, task := start(t, env, id, []string{"sleep", "3600"})
	if !leases(t, env)[key(id)] {
		t.Fatalf("no lease for %s while it runs", id)
	}
	ctx := env.Context()
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	_ = c.Delete(ctx, client.WithSnapshotCleanup)
	if leases(t, env)[key(id)] {
		t.Errorf("lease of %s survived its deletion", id)
	}

	// A shim killed with SIGKILL: containerd runs "shim delete", which
	// must kill the container and give the range back.
	id = newID("kill9")
	_, task = start(t, env, id, []string{"sleep", "3600"})
	before, err := env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}
	ctrPid := int(task.Pid())
	shimPid := parentShim(t, ctrPid, before)
	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !leases(t, env)[key(id)] && syscall.Kill(ctrPid, 0) != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("30s after its shim was killed: lease held=%v, container pid %d alive=%v",
		leases(t, env)[key(id)], ctrPid, syscall.Kill(ctrPid, 0) == nil)
}

// parentShim finds the shim that is the parent of a container pid.
func parentShim(t *testing.T, pid int, shims map[int]string) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ppid, _ := strconv.Atoi(f[1])
	if _, ok := shims[ppid]; !ok {
		t.Fatalf("parent %d of container pid %d is not a shim of this containerd (%v)", ppid, pid, shims)
	}
	return ppid
}
