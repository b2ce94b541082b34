package idalloc

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/profiles/userns"
)

// liveOther returns the owner of a running child process (another shim, as
// far as the allocator can tell); it is killed when the test ends.
func liveOther(t *testing.T) Owner {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	o, err := ProcessOwner(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestLeaseKeyNamespaces is issue 21's second finding: the same container
// ID in two containerd namespaces got one lease and one range, and deleting
// one freed the range under the other. Keys now carry the namespace.
func TestLeaseKeyNamespaces(t *testing.T) {
	a := newAlloc(t, t.TempDir(), 4)
	o := me(t)
	ka, err := LeaseKey("a", "same-id")
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := LeaseKey("b", "same-id")
	ra, err := a.Allocate(ka, o)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := a.Allocate(kb, o)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Overlaps(rb) {
		t.Fatalf("namespaces a and b share %v / %v", ra, rb)
	}
	if err := a.Release(ka); err != nil {
		t.Fatal(err)
	}
	if l, err := a.Lookup(kb); err != nil || l.Range != rb || l.Namespace != "b" || l.ID != "same-id" {
		t.Fatalf("b's lease after a's release: %+v, %v", l, err)
	}
	// The next pod gets a's old range, never b's.
	rc, err := a.Allocate("c@other", o)
	if err != nil || rc.Overlaps(rb) {
		t.Fatalf("next pod got %v (%v), b holds %v", rc, err, rb)
	}
	// Keys are unambiguous: namespaces and IDs may contain '.', '-', '_'.
	for _, c := range [][2]string{{"a.b", "c"}, {"a", "b.c"}} {
		k, err := LeaseKey(c[0], c[1])
		if err != nil {
			t.Fatal(err)
		}
		if ns, id, _ := splitKey(k); ns != c[0] || id != c[1] {
			t.Errorf("LeaseKey(%q, %q) = %q splits to %q, %q", c[0], c[1], k, ns, id)
		}
	}
	for _, c := range [][2]string{{"", "x"}, {"x", ""}, {"a@b", "c"}, {"a", "../x"}} {
		if _, err := LeaseKey(c[0], c[1]); !errors.Is(err, userns.ErrInvalid) {
			t.Errorf("LeaseKey(%q, %q) = %v, want ErrInvalid", c[0], c[1], err)
		}
	}
}

// TestSecondClaimOnLiveLease: a claim on a key whose owner still runs fails
// with ErrLeaseHeld (kind AlreadyExists) and changes nothing; the owner's
// own repeated claim still succeeds, and a dead owner's lease passes on.
func TestSecondClaimOnLiveLease(t *testing.T) {
	a := newAlloc(t, t.TempDir(), 4)
	other := liveOther(t)
	r, err := a.Allocate("ns@pod", other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Allocate("ns@pod", me(t))
	if !errors.Is(err, userns.ErrLeaseHeld) {
		t.Fatalf("second claim on a live lease = %v, want ErrLeaseHeld", err)
	}
	var kind interface{ AlreadyExists() }
	if !errors.As(err, &kind) {
		t.Errorf("error %v does not carry the AlreadyExists kind", err)
	}
	if l, _ := a.Lookup("ns@pod"); l.Owner != other || l.Range != r {
		t.Fatalf("a refused claim changed the lease: %+v", l)
	}
	if again, err := a.Allocate("ns@pod", other); err != nil || again != r {
		t.Fatalf("the owner's own claim = %v, %v", again, err)
	}
}

// TestBareLeasesFromVersion1: lease files written before keys carried the
// namespace are still read, keep their range taken, are released by their
// bare key and reclaimed, and are never handed to a namespaced claim.
func TestBareLeasesFromVersion1(t *testing.T) {
	dir := t.TempDir()
	a := newAlloc(t, dir, 4)
	live, dead := liveOther(t), Owner{Pid: 1 << 30, StartTime: 1}
	write := func(key string, slot int, o Owner) userns.Range {
		r := userns.Range{Start: a.pool.Start + uint32(slot)*userns.RangeSize, Size: userns.RangeSize}
		b, _ := json.Marshal(map[string]any{"version": 1, "key": key, "start": r.Start, "size": r.Size, "owner": o, "created": time.Now()})
		if err := os.WriteFile(filepath.Join(dir, "leases", key+".json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return r
	}
	liveRange := write("same-id", 0, live)
	deadRange := write("gone", 1, dead)
	l, err := a.Lookup("same-id")
	if err != nil || l.Range != liveRange || l.ID != "same-id" || l.Namespace != "" {
		t.Fatalf("version 1 lease: %+v, %v", l, err)
	}
	// A namespaced claim on the same ID gets a range of its own.
	r, err := a.Allocate("k8s.io@same-id", me(t))
	if err != nil || r.Overlaps(liveRange) || r.Overlaps(deadRange) {
		t.Fatalf("namespaced claim = %v, %v; version 1 leases hold %v and %v", r, err, liveRange, deadRange)
	}
	released, err := a.Reclaim(OwnerAlive)
	if err != nil || len(released) != 1 || released[0].Key != "gone" {
		t.Fatalf("Reclaim = %+v, %v", released, err)
	}
	if err := a.Release("same-id"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup("same-id"); !errors.Is(err, userns.ErrNotFound) {
		t.Fatalf("released version 1 lease still there: %v", err)
	}
	// A version 1 file whose key claims a namespace is corrupt, not trusted.
	b, _ := json.Marshal(map[string]any{"version": 1, "key": "x@y", "start": 1 << 31, "size": userns.RangeSize, "owner": live})
	if err := os.WriteFile(filepath.Join(dir, "leases", "x@y.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lookup("x@y"); !errors.Is(err, userns.ErrCorruptState) {
		t.Fatalf("version 1 lease with a namespace: %v, want ErrCorruptState", err)
	}
}

// TestRangeSize is issue 13's larger ranges: an allocator with a range size
// of 131072 hands out aligned ranges of that size, never overlapping leases
// of the default size written before the change; sizes that are not
// multiples of 65536, or do not fit the pool, are refused.
func TestRangeSize(t *testing.T) {
	dir := t.TempDir()
	o := me(t)
	small, err := newAlloc(t, dir, 8).Allocate("t@small", o)
	if err != nil {
		t.Fatal(err)
	}
	big, err := NewSizedAllocator(dir, testPool(8), 2*userns.RangeSize)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]userns.Range{}
	for _, k := range []string{"t@b0", "t@b1", "t@b2"} {
		r, err := big.Allocate(k, o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Size != 2*userns.RangeSize || (r.Start-big.pool.Start)%(2*userns.RangeSize) != 0 || r.Overlaps(small) {
			t.Fatalf("%s: %v (the default-size lease holds %v)", k, r, small)
		}
		for k2, r2 := range got {
			if r.Overlaps(r2) {
				t.Fatalf("%s %v overlaps %s %v", k, r, k2, r2)
			}
		}
		got[k] = r
	}
	if _, err := big.Allocate("t@b3", o); !errors.Is(err, userns.ErrPoolExhausted) {
		t.Fatalf("8 small slots, one taken: 3 double ranges fit, got %v", err)
	}
	for _, size := range []uint32{0, userns.RangeSize + 1, 3 * userns.RangeSize / 2, userns.MaxRangeSize + userns.RangeSize} {
		if _, err := NewSizedAllocator(dir, testPool(8), size); !errors.Is(err, userns.ErrInvalid) {
			t.Errorf("size %d: %v, want ErrInvalid", size, err)
		}
	}
	if _, err := NewSizedAllocator(dir, testPool(1), 2*userns.RangeSize); !errors.Is(err, userns.ErrInvalid) {
		t.Errorf("a pool smaller than one range: %v, want ErrInvalid", err)
	}
}
