package profiles

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
)

var name = recorded.Name{Namespace: "shop", Workload: "web", Container: "app"}

type counts struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *counts) ProfileOp(op string)        { c.add(op) }
func (c *counts) Error(reason string)        { c.add("error:" + reason) }
func (c *counts) SetProfiles(map[string]int) {}
func (c *counts) get(k string) int           { c.mu.Lock(); defer c.mu.Unlock(); return c.ops[k] }
func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops == nil {
		c.ops = map[string]int{}
	}
	c.ops[k]++
}

func fakeClient() *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{GVR: Kind + "List"})
}

type node struct {
	s     *Syncer
	store *profilestore.Store
	obs   *counts
}

func newNode(t *testing.T, c *dynamicfake.FakeDynamicClient, nodeName string) *node {
	dir := t.TempDir()
	store := &profilestore.Store{Dir: filepath.Join(dir, "store"), GOARCH: "amd64"}
	obs := &counts{}
	return &node{store: store, obs: obs, s: &Syncer{
		Client: c, Store: store, Node: nodeName, Observer: obs, GOARCH: "amd64",
		StatePath: filepath.Join(dir, "state.json"),
		Now:       func() time.Time { return time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC) },
	}}
}

func (n *node) record(t *testing.T, at time.Time, syscalls ...string) {
	t.Helper()
	p := recorded.New(name, recorded.Image{Name: "nginx:1"}, at, map[specs.Arch][]string{specs.ArchX86_64: syscalls})
	if _, err := n.store.Save(p); err != nil {
		t.Fatal(err)
	}
}

func (n *node) sync(t *testing.T) {
	t.Helper()
	if err := n.s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (n *node) stored(t *testing.T) *recorded.Profile {
	t.Helper()
	p, err := n.store.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func object(t *testing.T, c *dynamicfake.FakeDynamicClient) *Object {
	t.Helper()
	u, err := c.Resource(GVR).Namespace("shop").Get(context.Background(), "web.app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o, err := FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestTwoNodesMergeIntoOneObjectAndBothStores(t *testing.T) {
	c := fakeClient()
	a, b := newNode(t, c, "node-a"), newNode(t, c, "node-b")
	a.record(t, t0, "read", "write")
	a.record(t, t0.Add(time.Minute), "read")
	b.record(t, t0.Add(time.Hour), "read", "openat")

	a.sync(t)
	b.sync(t)
	a.sync(t)
	o := object(t, c)
	if o.Spec.Runs != 3 {
		t.Errorf("object runs %d, want 3", o.Spec.Runs)
	}
	want := []string{"openat", "read", "write"}
	if got := o.Spec.Syscalls["SCMP_ARCH_X86_64"]; !reflect.DeepEqual(got, want) {
		t.Errorf("object syscalls %v, want %v", got, want)
	}
	if len(o.Status.Nodes) != 2 || o.Status.Nodes[0].Name != "node-a" || o.Status.Nodes[0].Runs != 2 ||
		o.Status.Nodes[1].Name != "node-b" || o.Status.Nodes[1].Runs != 1 {
		t.Errorf("status %+v", o.Status.Nodes)
	}
	for _, n := range []*node{a, b} {
		p := n.stored(t)
		if p.Runs != 3 || !reflect.DeepEqual(p.Syscalls[specs.ArchX86_64], want) {
			t.Errorf("%s stores runs %d syscalls %v", n.s.Node, p.Runs, p.Syscalls)
		}
		if !p.FirstRecorded.Equal(t0) || !p.LastRecorded.Equal(t0.Add(time.Hour)) {
			t.Errorf("%s stores first %v last %v", n.s.Node, p.FirstRecorded, p.LastRecorded)
		}
	}
	// Rounds without anything new change nothing: no run counted twice.
	for range 3 {
		a.sync(t)
		b.sync(t)
	}
	if o := object(t, c); o.Spec.Runs != 3 {
		t.Errorf("after idle rounds: object runs %d, want 3", o.Spec.Runs)
	}
	if a.stored(t).Runs != 3 || b.stored(t).Runs != 3 {
		t.Errorf("after idle rounds: stores %d and %d runs", a.stored(t).Runs, b.stored(t).Runs)
	}

	// A new recording on b reaches a through the object.
	b.record(t, t0.Add(2*time.Hour), "bpf")
	b.sync(t)
	a.sync(t)
	if o := object(t, c); o.Spec.Runs != 4 || len(o.Spec.Syscalls["SCMP_ARCH_X86_64"]) != 4 {
		t.Errorf("after a new recording: object %+v", o.Spec)
	}
	if p := a.stored(t); p.Runs != 4 || !reflect.DeepEqual(p.Syscalls[specs.ArchX86_64], []string{"bpf", "openat", "read", "write"}) {
		t.Errorf("a's store after b's new recording: runs %d syscalls %v", p.Runs, p.Syscalls)
	}

	// Deleting the object removes the profile from every store.
	if err := c.Resource(GVR).Namespace("shop").Delete(context.Background(), "web.app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	a.sync(t)
	b.sync(t)
	for _, n := range []*node{a, b} {
		if _, err := n.store.Load(name); err == nil {
			t.Errorf("%s still stores the profile of a deleted object", n.s.Node)
		}
		if n.obs.get("delete") != 1 {
			t.Errorf("%s counted %d deletes", n.s.Node, n.obs.get("delete"))
		}
	}
}

func TestMergeRetriesConflicts(t *testing.T) {
	c := fakeClient()
	a, b := newNode(t, c, "node-a"), newNode(t, c, "node-b")
	b.record(t, t0, "read")
	b.sync(t)
	a.record(t, t0, "write")
	conflicts := 2
	c.PrependReactor("update", Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(GVR.GroupResource(), "web.app", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	a.sync(t)
	if got := a.obs.get("conflict"); got != 2 {
		t.Errorf("conflicts counted %d, want 2", got)
	}
	if o := object(t, c); o.Spec.Runs != 2 || len(o.Spec.Syscalls["SCMP_ARCH_X86_64"]) != 2 {
		t.Errorf("object after retried merge: %+v", o.Spec)
	}
}

func TestAPIServerUnreachableLosesNothing(t *testing.T) {
	c := fakeClient()
	a := newNode(t, c, "node-a")
	down := true
	c.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	a.record(t, t0, "read")
	if err := a.s.Sync(context.Background()); err == nil {
		t.Fatal("sync with the API server down did not fail")
	}
	a.record(t, t0.Add(time.Minute), "write")
	_ = a.s.Sync(context.Background())
	if p := a.stored(t); p.Runs != 2 {
		t.Fatalf("local store changed while the API server was down: runs %d", p.Runs)
	}
	if a.obs.get("error:api") != 2 {
		t.Errorf("api errors counted %d", a.obs.get("error:api"))
	}
	down = false
	a.sync(t)
	if o := object(t, c); o.Spec.Runs != 2 || len(o.Spec.Syscalls["SCMP_ARCH_X86_64"]) != 2 {
		t.Errorf("object after the API server came back: %+v", o.Spec)
	}
}

func TestMergeBeforeCrashIsNotRepeated(t *testing.T) {
	c := fakeClient()
	a := newNode(t, c, "node-a")
	a.record(t, t0, "read")
	a.record(t, t0, "read")
	// The merge reached the API server, then the agent died before it
	// wrote its state or the store.
	if _, err := a.s.merge(context.Background(), a.stored(t), 2); err != nil {
		t.Fatal(err)
	}
	a.sync(t) // a fresh syncer: no state file yet
	if o := object(t, c); o.Spec.Runs != 2 {
		t.Errorf("object runs %d after a repeated merge, want 2", o.Spec.Runs)
	}
}

func TestCorruptObjectIsIgnoredAndCounted(t *testing.T) {
	c := fakeClient()
	a := newNode(t, c, "node-a")
	a.record(t, t0, "read")
	before := a.stored(t)
	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version, "kind": Kind,
		"metadata": map[string]any{"name": "web.app", "namespace": "shop"},
		"spec": map[string]any{"workload": "web", "container": "app", "runs": int64(1),
			"syscalls": map[string]any{"SCMP_ARCH_X86_64": []any{"no_such_syscall"}}},
	}}
	if _, err := c.Resource(GVR).Namespace("shop").Create(context.Background(), bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version, "kind": Kind,
		"metadata": map[string]any{"name": "db.main", "namespace": "shop"},
		"spec":     map[string]any{"workload": "db", "container": "main", "runs": "many"},
	}}
	if _, err := c.Resource(GVR).Namespace("shop").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a.sync(t)
	if got := a.obs.get("error:object"); got != 2 {
		t.Errorf("corrupt objects counted %d, want 2", got)
	}
	if after := a.stored(t); after.Checksum != before.Checksum {
		t.Errorf("local profile changed because of a corrupt object")
	}
	if o := object(t, c); o.Spec.Syscalls["SCMP_ARCH_X86_64"][0] != "no_such_syscall" {
		t.Errorf("corrupt object was merged into: %+v", o.Spec)
	}
}

func TestLocalRecordingDuringWriteIsKept(t *testing.T) {
	c := fakeClient()
	a, b := newNode(t, c, "node-a"), newNode(t, c, "node-b")
	b.record(t, t0, "read")
	b.sync(t)
	a.record(t, t0, "write")
	// A shim saves on a between the agent's read and its write: the
	// replacement must not overwrite it.
	cur := a.stored(t)
	a.record(t, t0, "bpf")
	o := object(t, c)
	want, err := o.Profile("amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store.Replace(want, cur.Checksum); !errors.Is(err, profilestore.ErrChanged) {
		t.Fatalf("replace over a newer recording: %v", err)
	}
	a.sync(t)
	a.sync(t)
	p := a.stored(t)
	if !reflect.DeepEqual(p.Syscalls[specs.ArchX86_64], []string{"bpf", "read", "write"}) || p.Runs != 3 {
		t.Errorf("a's store: runs %d syscalls %v", p.Runs, p.Syscalls)
	}
}

func TestRepeatedErrorIsReportedOnce(t *testing.T) {
	c := fakeClient()
	a := newNode(t, c, "node-a")
	a.record(t, t0, "read")
	c.PrependReactor("create", Resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "shop")
	})
	if err := a.s.Sync(context.Background()); err == nil {
		t.Fatal("first failing round returned no error")
	}
	if err := a.s.Sync(context.Background()); err != nil {
		t.Errorf("the same error again was reported: %v", err)
	}
	if got := a.obs.get("error:api"); got != 2 {
		t.Errorf("api errors counted %d, want 2 (every round counts)", got)
	}
}
