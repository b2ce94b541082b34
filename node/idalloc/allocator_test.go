package idalloc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/profiles/userns"
)

func testPool(ranges int) userns.Pool {
	return userns.Pool{Start: 1 << 31, Size: uint32(ranges) * userns.RangeSize, Source: "test"}
}

func newAlloc(t *testing.T, dir string, ranges int) *Allocator {
	t.Helper()
	a, err := NewAllocator(dir, testPool(ranges))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func me(t *testing.T) Owner {
	t.Helper()
	o, err := CurrentOwner()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// assertDisjoint fails if any two leases overlap or leave the pool grid.
func assertDisjoint(t *testing.T, p userns.Pool, rs map[string]userns.Range) {
	t.Helper()
	keys := make([]string, 0, len(rs))
	for k := range rs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, a := range keys {
		r := rs[a]
		if r.Size != userns.RangeSize || r.Start < p.Start || r.End() > p.End() || (r.Start-p.Start)%userns.RangeSize != 0 {
			t.Errorf("%s: range %v off the pool grid", a, r)
		}
		for _, b := range keys[i+1:] {
			if r.Overlaps(rs[b]) {
				t.Errorf("%s %v overlaps %s %v", a, r, b, rs[b])
			}
		}
	}
}

func TestAllocateLowestFirstAndIdempotent(t *testing.T) {
	a := newAlloc(t, t.TempDir(), 4)
	o := me(t)
	for i := range 3 {
		r, err := a.Allocate(fmt.Sprintf("t@pod-%d", i), o)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint32(1<<31 + i*userns.RangeSize); r.Start != want || r.Size != userns.RangeSize {
			t.Fatalf("pod-%d got %v, want start %d", i, r, want)
		}
	}
	again, err := a.Allocate("t@pod-1", o)
	if err != nil || again.Start != 1<<31+userns.RangeSize {
		t.Fatalf("re-allocate pod-1 = %v, %v", again, err)
	}
	l, err := a.Lookup("t@pod-1")
	if err != nil || l.Range != again || l.Owner != o || l.Key != "t@pod-1" || l.Created.IsZero() {
		t.Fatalf("Lookup = %+v, %v", l, err)
	}
}

func TestAllocateTakesOverOwner(t *testing.T) {
	a := newAlloc(t, t.TempDir(), 2)
	dead := Owner{Pid: 1 << 30, StartTime: 1}
	r1, err := a.Allocate("t@pod", dead)
	if err != nil {
		t.Fatal(err)
	}
	o := me(t)
	r2, err := a.Allocate("t@pod", o)
	if err != nil || r1 != r2 {
		t.Fatalf("re-allocate = %v, %v; want %v", r2, err, r1)
	}
	if l, _ := a.Lookup("t@pod"); l.Owner != o {
		t.Fatalf("owner not taken over: %+v", l.Owner)
	}
}

func TestPersistenceAcrossAllocators(t *testing.T) {
	dir := t.TempDir()
	o := me(t)
	r, err := newAlloc(t, dir, 4).Allocate("t@sandbox-a", o)
	if err != nil {
		t.Fatal(err)
	}
	// A restarted shim opens the same directory.
	b := newAlloc(t, dir, 4)
	l, err := b.Lookup("t@sandbox-a")
	if err != nil || l.Range != r {
		t.Fatalf("Lookup after restart = %+v, %v", l, err)
	}
	if got, _ := b.Allocate("t@sandbox-a", o); got != r {
		t.Fatalf("same key after restart got %v, want %v", got, r)
	}
	if got, _ := b.Allocate("t@sandbox-b", o); got.Overlaps(r) {
		t.Fatalf("new key got %v overlapping %v", got, r)
	}
}

func TestPoolChangeKeepsOldLeases(t *testing.T) {
	dir := t.TempDir()
	o := me(t)
	old, err := newAlloc(t, dir, 4).Allocate("t@old", o)
	if err != nil {
		t.Fatal(err)
	}
	// A new pool, shifted by half a range, overlapping the old lease.
	p := userns.Pool{Start: 1<<31 - userns.RangeSize/2, Size: 4 * userns.RangeSize, Source: "shifted"}
	b, err := NewAllocator(dir, p)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]userns.Range{"t@old": old}
	for i := range 2 {
		k := fmt.Sprintf("t@new-%d", i)
		if got[k], err = b.Allocate(k, o); err != nil {
			t.Fatal(err)
		}
	}
	for k, r := range got {
		if k != "t@old" && r.Overlaps(old) {
			t.Errorf("%s %v overlaps the old lease %v", k, r, old)
		}
	}
	// Slots 0 and 1 of the shifted grid touch the old lease: only 2 were free.
	if _, err := b.Allocate("t@one-too-many", o); !errors.Is(err, userns.ErrPoolExhausted) {
		t.Fatalf("want exhaustion, got %v", err)
	}
}

func TestReleaseAndReuse(t *testing.T) {
	a := newAlloc(t, t.TempDir(), 2)
	o := me(t)
	r0, _ := a.Allocate("t@a", o)
	if _, err := a.Allocate("t@b", o); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("t@a"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release("t@a"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, err := a.Lookup("t@a"); !errors.Is(err, userns.ErrNotFound) {
		t.Fatalf("Lookup after release = %v, want ErrNotFound", err)
	}
	if r, err := a.Allocate("t@c", o); err != nil || r != r0 {
		t.Fatalf("freed range not reused: %v, %v", r, err)
	}
}

func TestExhaustion(t *testing.T) {
	dir := t.TempDir()
	a := newAlloc(t, dir, 3)
	o := me(t)
	for i := range 3 {
		if _, err := a.Allocate(fmt.Sprintf("t@p%d", i), o); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Allocate("t@p3", o)
	if !errors.Is(err, userns.ErrPoolExhausted) || !strings.Contains(err.Error(), "(test)") ||
		!strings.Contains(err.Error(), "all 3 ranges") {
		t.Fatalf("Allocate on a full pool = %v", err)
	}
	var marker interface{ ResourceExhausted() }
	if !errors.As(err, &marker) {
		t.Fatal("exhaustion error lacks errdefs' ResourceExhausted marker")
	}
	// Nothing half-allocated.
	ents, _ := os.ReadDir(filepath.Join(dir, "leases"))
	if len(ents) != 3 {
		t.Fatalf("lease dir holds %d files after failed allocation", len(ents))
	}
	if _, err := a.Lookup("t@p3"); !errors.Is(err, userns.ErrNotFound) {
		t.Fatalf("failed key has a lease: %v", err)
	}
}

func TestReclaim(t *testing.T) {
	dir := t.TempDir()
	a := newAlloc(t, dir, 4)
	live := me(t)
	dead := Owner{Pid: live.Pid, StartTime: live.StartTime + 1, BootID: live.BootID} // reused pid
	if _, err := a.Allocate("t@live", live); err != nil {
		t.Fatal(err)
	}
	deadRange, err := a.Allocate("t@dead", dead)
	if err != nil {
		t.Fatal(err)
	}
	// A writer that crashed between create and rename, named as
	// fileutil's replace names its temporary files.
	tmp := filepath.Join(dir, "leases", ".t@dead.json.tmp-123")
	if err := os.WriteFile(tmp, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	released, err := a.Reclaim(OwnerAlive)
	if err != nil {
		t.Fatal(err)
	}
	if len(released) != 1 || released[0].Key != "t@dead" || released[0].Range != deadRange {
		t.Fatalf("released %+v", released)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("stale tmp file survived: %v", err)
	}
	leases, _ := a.Leases()
	if len(leases) != 1 || leases[0].Key != "t@live" {
		t.Fatalf("leases after reclaim: %+v", leases)
	}
	if r, _ := a.Allocate("t@next", live); r != deadRange {
		t.Fatalf("reclaimed range not reused: %v", r)
	}
}

func TestCorruptLease(t *testing.T) {
	dir := t.TempDir()
	a := newAlloc(t, dir, 4)
	o := me(t)
	if _, err := a.Allocate("t@ok", Owner{Pid: 1 << 30, StartTime: 1}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "leases", "bad.json")
	for _, content := range []string{"{not json", `{"version":1,"key":"other","start":1,"size":1}`, `{"version":9,"key":"bad"}`} {
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		// Allocation refuses to guess which IDs the unreadable lease covers.
		_, err := a.Allocate("t@new", o)
		var marker interface{ FailedPrecondition() }
		if !errors.Is(err, userns.ErrCorruptState) || !errors.As(err, &marker) || !strings.Contains(err.Error(), bad) {
			t.Fatalf("Allocate with %q = %v", content, err)
		}
	}
	// Reclaim still frees what it can and reports the rest.
	released, err := a.Reclaim(OwnerAlive)
	if !errors.Is(err, userns.ErrCorruptState) || len(released) != 1 || released[0].Key != "t@ok" {
		t.Fatalf("Reclaim = %+v, %v", released, err)
	}
}

// Leases are written without fsync, so a crash of the machine can leave one
// empty or torn. Such a file, last changed before this boot, is a dead lease
// of a pod that no longer runs: allocation goes past it, a lookup finds no
// lease, and Reclaim removes it. A torn file changed in this boot is still
// corruption (TestCorruptLease).
func TestTornLeaseFromEarlierBoot(t *testing.T) {
	dir := t.TempDir()
	a := newAlloc(t, dir, 4)
	o := me(t)
	first, err := a.Allocate("t@first", o)
	if err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(dir, "leases", "t@torn.json")
	for _, content := range []string{"", `{"version":2,"key":"t@to`} {
		if err := os.WriteFile(torn, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		// Before this boot: the Unix epoch is before any boot.
		if err := os.Chtimes(torn, time.Unix(1000, 0), time.Unix(1000, 0)); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Lookup("t@torn"); !errors.Is(err, userns.ErrNotFound) {
			t.Fatalf("Lookup of a torn lease of an earlier boot (%q) = %v, want ErrNotFound", content, err)
		}
		r, err := a.Allocate("t@next", o)
		if err != nil {
			t.Fatalf("Allocate past a torn lease of an earlier boot (%q): %v", content, err)
		}
		if r == first {
			t.Fatalf("second lease got the first's range %v", r)
		}
		leases, err := a.Leases()
		if err != nil || len(leases) != 2 {
			t.Fatalf("Leases = %+v, %v; want the two whole leases", leases, err)
		}
		if err := a.Release("t@next"); err != nil {
			t.Fatal(err)
		}
	}
	// The same key can be claimed again: the torn file is replaced.
	if _, err := a.Allocate("t@torn", o); err != nil {
		t.Fatalf("Allocate over a torn lease of an earlier boot: %v", err)
	}
	if err := os.WriteFile(torn, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(torn, time.Unix(1000, 0), time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reclaim(OwnerAlive); err != nil {
		t.Fatalf("Reclaim with a torn lease of an earlier boot: %v", err)
	}
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Fatalf("torn lease of an earlier boot survived Reclaim: %v", err)
	}
	// Changed in this boot, the same empty file is corruption.
	if err := os.WriteFile(torn, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate("t@new", o); !errors.Is(err, userns.ErrCorruptState) {
		t.Fatalf("Allocate with an empty lease of this boot = %v, want ErrCorruptState", err)
	}
}

func TestInvalidInput(t *testing.T) {
	a := newAlloc(t, t.TempDir(), 1)
	o := me(t)
	for _, k := range []string{"", ".hidden", "-x", "a/b", "../x", "lock json", strings.Repeat("a", maxIDLen+1), "a@b@c", "@x", "x@", "a@" + strings.Repeat("a", maxIDLen+1)} {
		if _, err := a.Allocate(k, o); !errors.Is(err, userns.ErrInvalid) {
			t.Errorf("Allocate(%q) = %v, want ErrInvalid", k, err)
		}
		if _, err := a.Lookup(k); !errors.Is(err, userns.ErrInvalid) {
			t.Errorf("Lookup(%q) = %v, want ErrInvalid", k, err)
		}
	}
	if _, err := a.Allocate("bare", o); !errors.Is(err, userns.ErrInvalid) {
		t.Errorf("Allocate without a namespace = %v, want ErrInvalid", err)
	}
	if _, err := a.Allocate("t@k", Owner{}); !errors.Is(err, userns.ErrInvalid) {
		t.Errorf("Allocate without owner = %v", err)
	}
	if _, err := NewAllocator("relative", testPool(1)); !errors.Is(err, userns.ErrInvalid) {
		t.Errorf("relative dir: %v", err)
	}
	if _, err := NewAllocator(t.TempDir(), userns.Pool{Start: 0, Size: userns.RangeSize}); !errors.Is(err, userns.ErrInvalid) {
		t.Errorf("pool over host IDs: %v", err)
	}
}

func TestFreeSkipsMisalignedLeases(t *testing.T) {
	a := &Allocator{pool: testPool(4), size: userns.RangeSize}
	base := uint32(1 << 31)
	got, ok := a.free([]Lease{
		{Range: userns.Range{Start: base + 10, Size: 5}},                                      // slot 0
		{Range: userns.Range{Start: base + userns.RangeSize - 1, Size: userns.RangeSize + 2}}, // slots 0,1,2
	})
	if !ok || got.Start != base+3*userns.RangeSize {
		t.Fatalf("free = %v %v, want slot 3", got, ok)
	}
	got, ok = a.free([]Lease{{Range: userns.Range{Start: base - userns.RangeSize, Size: userns.RangeSize}}}) // outside, below
	if !ok || got.Start != base {
		t.Fatalf("free = %v %v, want slot 0", got, ok)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	const n = 64
	dir := t.TempDir()
	o := me(t)
	var (
		mu  sync.Mutex
		got = map[string]userns.Range{}
		wg  sync.WaitGroup
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate allocators on one directory behave like separate shims.
			a, err := NewAllocator(dir, testPool(n))
			if err != nil {
				t.Error(err)
				return
			}
			key := fmt.Sprintf("t@pod-%d", i/2) // pairs race for the same key
			r, err := a.Allocate(key, o)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := got[key]; ok && prev != r {
				t.Errorf("%s got %v and %v", key, prev, r)
			}
			got[key] = r
		}()
	}
	wg.Wait()
	if len(got) != n/2 {
		t.Fatalf("%d keys allocated", len(got))
	}
	assertDisjoint(t, testPool(n), got)
}

// helperEnv makes the test binary act as one competing shim process.
const helperEnv = "STOCKADE_USERNS_ALLOC_HELPER"

func TestAllocatorHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process for TestConcurrentProcesses")
	}
	// spec is "dir:prefix:count:ranges".
	f := strings.Split(spec, ":")
	count, _ := strconv.Atoi(f[2])
	ranges, _ := strconv.Atoi(f[3])
	a, err := NewAllocator(f[0], testPool(ranges))
	if err != nil {
		t.Fatal(err)
	}
	o := me(t)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for i := range count {
		key := fmt.Sprintf("t@%s-%d", f[1], i)
		if i%5 == 0 {
			key = fmt.Sprintf("t@shared-%d", i) // every process also races for shared keys
		}
		r, err := a.Allocate(key, o)
		if errors.Is(err, userns.ErrLeaseHeld) && strings.Contains(key, "shared") {
			// Another live process holds it: a second claim never
			// takes a live lease over.
			fmt.Fprintf(out, "HELD %s\n", key)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"key": key, "range": r})
		fmt.Fprintf(out, "LEASE %s\n", b)
	}
}

func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	const procs, perProc = 6, 25
	dir := t.TempDir()
	ranges := procs * perProc
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAllocatorHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:proc%d:%d:%d", helperEnv, dir, i, perProc, ranges))
		outs[i] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	got := map[string]userns.Range{}
	claims := map[string]int{} // per shared key: leases plus refusals
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
		for _, line := range strings.Split(outs[i].String(), "\n") {
			if k, ok := strings.CutPrefix(line, "HELD "); ok {
				claims[k]++
				continue
			}
			js, ok := strings.CutPrefix(line, "LEASE ")
			if !ok {
				continue
			}
			var l struct {
				Key   string
				Range userns.Range
			}
			if err := json.Unmarshal([]byte(js), &l); err != nil {
				t.Fatal(err)
			}
			if prev, ok := got[l.Key]; ok && prev != l.Range {
				t.Errorf("%s: one process got %v, another %v", l.Key, prev, l.Range)
			}
			got[l.Key] = l.Range
			if strings.Contains(l.Key, "shared") {
				claims[l.Key]++
			}
		}
	}
	for k, n := range claims {
		if _, ok := got[k]; !ok || n != procs {
			t.Errorf("%s: %d answers (leased: %v), want one per process", k, n, ok)
		}
	}
	// 20 private keys per process plus 5 shared ones.
	if want := procs*(perProc-perProc/5) + perProc/5; len(got) != want {
		t.Fatalf("%d distinct keys, want %d", len(got), want)
	}
	assertDisjoint(t, testPool(ranges), got)

	leases, err := newAlloc(t, dir, ranges).Leases()
	if err != nil || len(leases) != len(got) {
		t.Fatalf("on disk: %d leases, %v", len(leases), err)
	}
	for _, l := range leases {
		if got[l.Key] != l.Range {
			t.Errorf("%s on disk %v, reported %v", l.Key, l.Range, got[l.Key])
		}
	}
}
