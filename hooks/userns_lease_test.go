package hooks

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/stockade-dev/stockade/node/idalloc"
	"github.com/stockade-dev/stockade/profiles/userns"
)

// TestUsernsLeasePerNamespace: the same sandbox ID in two containerd
// namespaces gets two ranges (issue 21: they shared one), releasing one
// leaves the other, and a second live shim's claim on a held key fails with
// AlreadyExists instead of taking the range over.
func TestUsernsLeasePerNamespace(t *testing.T) {
	ctx := context.Background()
	e := newUsernsEnv(t, 4)
	a := e.container(criSpec(true), testSandboxID, 0)
	b := e.container(criSpec(true), testSandboxID, 0)
	b.ContainerdNamespace = "other"
	for _, c := range []*Container{a, b} {
		if _, err := e.step.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	ra, rb := a.Result.UIDMap[0], b.Result.UIDMap[0]
	if ra.HostID == rb.HostID {
		t.Fatalf("namespaces %s and %s share host range %d", a.ContainerdNamespace, b.ContainerdNamespace, ra.HostID)
	}
	if err := e.step.Release(ctx, testNS, testSandboxID); err != nil {
		t.Fatal(err)
	}
	if l, err := e.alloc.Lookup("other@" + testSandboxID); err != nil || l.Start != rb.HostID {
		t.Fatalf("other namespace's lease after release: %+v, %v", l, err)
	}

	// A second shim (alive) claims the key the first one holds.
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	o, err := idalloc.ProcessOwner(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	second := NewUserNSStep(e.alloc, o)
	second.procRoot, second.idmapSupported, second.writeNetSysctls = e.step.procRoot, e.step.idmapSupported, e.step.writeNetSysctls
	c := e.container(criSpec(true), testSandboxID, 0)
	c.ContainerdNamespace = "other"
	_, err = second.Apply(ctx, c)
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "other") {
		t.Fatalf("second claim on a live lease = %v, want AlreadyExists naming the namespace", err)
	}
	if l, _ := e.alloc.Lookup("other@" + testSandboxID); l.Owner != e.step.owner {
		t.Fatalf("the refused claim took the lease over: %+v", l.Owner)
	}
	// A container without a containerd namespace cannot be keyed.
	c = e.container(criSpec(true), "nons", 0)
	c.ContainerdNamespace = ""
	if _, err := e.step.Apply(ctx, c); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no namespace: %v, want InvalidArgument", err)
	}
}

// TestUsernsRangeSize: with userns.range_size = 131072 the pod's mapping
// covers 131072 IDs and a process user of 70000 is accepted; with the
// default it is refused before runc's setresuid would fail.
func TestUsernsRangeSize(t *testing.T) {
	ctx := context.Background()
	e := newUsernsEnv(t, 4)
	s := criSpec(true)
	s.Process.User.UID = 70000
	if _, err := e.step.Apply(ctx, e.container(s, testSandboxID, 0)); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "65536") {
		t.Fatalf("uid 70000 in a 65536 range: %v", err)
	}
	big, err := idalloc.NewSizedAllocator(e.node.UserNSStateDir(), e.alloc.Pool(), 2*userns.RangeSize)
	if err != nil {
		t.Fatal(err)
	}
	step := NewUserNSStep(big, e.step.owner)
	step.procRoot, step.idmapSupported, step.writeNetSysctls = e.step.procRoot, e.step.idmapSupported, e.step.writeNetSysctls
	c := e.container(s, testSandboxID, 0)
	if _, err := step.Apply(ctx, c); err != nil {
		t.Fatal(err)
	}
	if m := c.Result.UIDMap; len(m) != 1 || m[0].Size != 2*userns.RangeSize {
		t.Fatalf("uid map %+v, want one mapping of %d IDs", m, 2*userns.RangeSize)
	}
}

// TestUsernsReclaimSeesBareID: liveness tests look a lease's pod up by its
// Key, which used to be the bare sandbox ID (the shim's podAlive finds
// <state root>/*/<Key>/state.json). Reclaim hands them the bare ID, so a
// lease whose owner died while its containers still run is kept.
func TestUsernsReclaimSeesBareID(t *testing.T) {
	ctx := context.Background()
	e := newUsernsEnv(t, 4)
	if _, err := e.alloc.Allocate(testKey, idalloc.Owner{Pid: 1 << 30, StartTime: 1}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	released, err := e.step.Reclaim(ctx, func(l idalloc.Lease) bool {
		seen = append(seen, l.Key)
		return l.Key == testSandboxID // "its state.json exists"
	})
	if err != nil || len(released) != 0 || len(seen) != 1 || seen[0] != testSandboxID {
		t.Fatalf("Reclaim released %v (%v); alive saw keys %v, want [%s]", released, err, seen, testSandboxID)
	}
	if _, err := e.alloc.Lookup(testKey); err != nil {
		t.Fatalf("lease of a pod that may still run was reclaimed: %v", err)
	}
}
