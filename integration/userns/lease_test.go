package userns

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/integration/harness"
)

// startIn starts a sleeping busybox container named id in containerd
// namespace ns (which must hold the busybox image); it is removed when the
// test ends.
func startIn(t *testing.T, env *harness.Env, ns, id string) (client.Container, client.Task) {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	img, err := env.Client.GetImage(ctx, harness.BusyboxImage)
	if err != nil {
		t.Fatalf("image in namespace %s: %v", ns, err)
	}
	c, err := env.Client.NewContainer(ctx, id, client.WithImage(img), client.WithNewSnapshot(id+"-snap", img),
		env.NewContainerOpts(), client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "3600")))
	if err != nil {
		t.Fatalf("new container %s/%s: %v", ns, id, err)
	}
	t.Cleanup(func() {
		if task, err := c.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, client.WithProcessKill)
		}
		_ = c.Delete(ctx, client.WithSnapshotCleanup)
	})
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("new task %s/%s: %v", ns, id, err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start %s/%s: %v", ns, id, err)
	}
	return c, task
}

// TestSameIDInTwoNamespaces is issue 21's second finding, as reported with
// ctr: the same container ID in two containerd namespaces got one lease and
// one host range, deleting one freed the range while the other ran, and the
// next pod was given it. Leases are now keyed by namespace and ID.
func TestSameIDInTwoNamespaces(t *testing.T) {
	env := stockadeEnv(t)
	id := newID("same")
	// The harness imports busybox into both of these namespaces.
	nsA, nsB := harness.Namespace, harness.CRINamespace
	cA, taskA := startIn(t, env, nsA, id)
	_, taskB := startIn(t, env, nsB, id)
	rA, rB := hostRange(t, taskA.Pid()), hostRange(t, taskB.Pid())
	if rA.Overlaps(rB) {
		t.Fatalf("%s/%s and %s/%s share host IDs: %v and %v", nsA, id, nsB, id, rA, rB)
	}
	ls := leases(t, env)
	if !ls[nsA+"@"+id] || !ls[nsB+"@"+id] {
		t.Fatalf("want one lease per namespace, have %v", ls)
	}

	ctx := namespaces.WithNamespace(context.Background(), nsA)
	if _, err := taskA.Delete(ctx, client.WithProcessKill); err != nil {
		t.Fatal(err)
	}
	_ = cA.Delete(ctx, client.WithSnapshotCleanup)
	ls = leases(t, env)
	if ls[nsA+"@"+id] || !ls[nsB+"@"+id] {
		t.Fatalf("after deleting %s/%s: leases %v; want only %s's", nsA, id, ls, nsB)
	}
	if got := hostRange(t, taskB.Pid()); got != rB {
		t.Fatalf("%s/%s moved from %v to %v", nsB, id, rB, got)
	}
	// The next container must not be given the range still in use.
	_, taskC := startIn(t, env, nsA, newID("next"))
	if rC := hostRange(t, taskC.Pid()); rC.Overlaps(rB) {
		t.Fatalf("a new container got %v, which %s/%s still uses (%v)", rC, nsB, id, rB)
	}
}

// TestRangeSizeChown is issue 13's unmapped IDs: in a default pod, IDs of
// 65536 and up are unmapped and chown to 70000 fails with EINVAL (as with
// hostUsers: false); with userns.range_size = 131072 it works.
func TestRangeSizeChown(t *testing.T) {
	env := stockadeEnv(t)
	script := "touch /tmp/f && chown 70000:70000 /tmp/f; echo rc=$?; stat -c %u:%g /tmp/f"
	run := func() (uint32, string) {
		return env.RunToExit(t, env.NewContainer(t, newID("chown"), []string{"sh", "-c", script}))
	}
	code, out := run()
	if code != 0 || !strings.Contains(out, "Invalid argument") || !strings.Contains(out, "rc=1") {
		t.Fatalf("default range: want chown 70000 to fail with EINVAL, got exit %d: %s", code, out)
	}
	env.WithNodeConfig(t, "[userns]\nrange_size = 131072")
	code, out = run()
	if code != 0 || !strings.Contains(out, "rc=0") || !strings.Contains(out, "70000:70000") {
		t.Fatalf("range_size 131072: want chown 70000 to work, got exit %d: %s", code, out)
	}
}
