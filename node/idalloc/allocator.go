package idalloc

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stockade-dev/stockade/node/fileutil"
	"github.com/stockade-dev/stockade/profiles/userns"
	"golang.org/x/sys/unix"
)

// Lease file versions. Version 1 keyed a lease by the bare sandbox or
// container ID, so the same ID in two containerd namespaces named one lease
// and both pods got one range; version 2 keys it by namespace and ID
// (LeaseKey). Version 1 files are still read, counted as taken, released by
// their bare key and reclaimed, so a node upgraded with pods running leaks
// and shares nothing; they are never written or claimed again.
const (
	leaseVersionBare = 1
	leaseVersion     = 2
)

// maxIDLen bounds each part of a lease key (containerd's identifiers are at
// most 76 characters).
const maxIDLen = 128

// keySep joins the containerd namespace and the ID in a lease key. Neither
// containerd namespaces nor container IDs may contain it, so a key names
// exactly one (namespace, ID) pair.
const keySep = "@"

// Lease records that key holds a range. It lives in <dir>/leases/<key>.json.
type Lease struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	// Namespace and ID are the containerd namespace and the sandbox (or
	// standalone container) ID the key names. Namespace is empty in a
	// version 1 lease, whose key is the bare ID.
	Namespace string `json:"namespace,omitempty"`
	ID        string `json:"id,omitempty"`
	userns.Range
	Owner   Owner     `json:"owner"`
	Created time.Time `json:"created"`
}

// LeaseKey is the lease key of sandbox (or standalone container) id in
// containerd namespace ns: unique on the node, since containerd IDs are
// unique only within a namespace.
func LeaseKey(ns, id string) (string, error) {
	for _, part := range []struct{ what, v string }{{"containerd namespace", ns}, {"sandbox ID", id}} {
		if err := validID(part.v); err != nil {
			return "", fmt.Errorf("lease key: %s %w", part.what, err)
		}
	}
	return ns + keySep + id, nil
}

// Allocator hands out non-overlapping ranges of a pool. Its state is a
// directory shared by every shim on the node (one shim per pod): each lease
// is a small JSON file, written by tmp+rename so a reader never sees half a
// lease, and every change happens under an exclusive flock on <dir>/lock, so
// concurrent processes never pick the same range. Leases outlive the
// process: a restarted shim finds its pod's range again under the same key.
type Allocator struct {
	dir  string
	pool userns.Pool
	// size is the number of IDs of each new range, a multiple of RangeSize.
	size uint32
	// mu keeps the goroutines of one process from each parking an OS thread
	// in flock; the flock is what serialises processes.
	mu sync.Mutex
}

// NewAllocator opens (creating if needed, mode 0700) the lease directory dir
// for pool. Leases already in dir that lie outside the pool (after a pool
// change) stay valid and are never overlapped.
func NewAllocator(dir string, pool userns.Pool) (*Allocator, error) {
	return NewSizedAllocator(dir, pool, userns.RangeSize)
}

// NewSizedAllocator is NewAllocator handing out ranges of size IDs, a
// multiple of RangeSize that the pool holds at least once. Leases of another
// size (written before a size change) stay valid and are never overlapped.
func NewSizedAllocator(dir string, pool userns.Pool, size uint32) (*Allocator, error) {
	if err := userns.ValidRangeSize(size); err != nil {
		return nil, err
	}
	if err := pool.Validate(); err != nil {
		return nil, err
	}
	if pool.Size < size {
		return nil, fmt.Errorf("pool %s: %d IDs is smaller than one pod range of %d: %w", pool, pool.Size, size, userns.ErrInvalid)
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("lease directory %q: must be absolute: %w", dir, userns.ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Join(dir, "leases"), 0o700); err != nil {
		return nil, fmt.Errorf("create lease directory: %w", err)
	}
	return &Allocator{dir: dir, pool: pool, size: size}, nil
}

// RangeSize is the number of IDs of each range this allocator hands out.
func (a *Allocator) RangeSize() uint32 { return a.size }

// Pool is the pool ranges come from.
func (a *Allocator) Pool() userns.Pool { return a.pool }

// Dir is the lease directory.
func (a *Allocator) Dir() string { return a.dir }

// Allocate returns the range leased to key (from LeaseKey), leasing the
// lowest free range of the pool if key has none. It is idempotent for one
// owner: the same key and owner always get the same range until Release.
// A lease whose owner has died passes to the new owner, so a shim that
// re-creates a pod after its predecessor died keeps the range; a lease whose
// owner still runs is never taken over: that claim fails with
// ErrLeaseHeld, because two live pods must never share a range. On error
// nothing is written.
func (a *Allocator) Allocate(key string, owner Owner) (userns.Range, error) {
	ns, id, err := splitKey(key)
	if err != nil {
		return userns.Range{}, err
	}
	if ns == "" {
		return userns.Range{}, fmt.Errorf("lease key %q: must name the containerd namespace (LeaseKey): %w", key, userns.ErrInvalid)
	}
	if owner.Pid <= 0 {
		return userns.Range{}, fmt.Errorf("lease %s: owner pid %d: %w", key, owner.Pid, userns.ErrInvalid)
	}
	unlock, err := a.lock()
	if err != nil {
		return userns.Range{}, err
	}
	defer unlock()

	leases, err := a.readAll()
	if err != nil {
		return userns.Range{}, err
	}
	for _, l := range leases {
		if l.Key != key {
			continue
		}
		if l.Owner != owner {
			if l.Owner.Alive() {
				return userns.Range{}, fmt.Errorf("lease %s: range %s is held by a running shim, %s; a second claim on a live lease is refused: %w",
					key, l.Range, l.Owner, userns.ErrLeaseHeld)
			}
			l.Owner = owner
			if err := a.write(l); err != nil {
				return userns.Range{}, err
			}
		}
		return l.Range, nil
	}
	r, ok := a.free(leases)
	if !ok {
		return userns.Range{}, fmt.Errorf("user namespace pool %s: all %d ranges of %d IDs are leased: %w",
			a.pool, a.pool.Size/a.size, a.size, userns.ErrPoolExhausted)
	}
	l := Lease{Version: leaseVersion, Key: key, Namespace: ns, ID: id, Range: r, Owner: owner, Created: time.Now().UTC()}
	if err := a.write(l); err != nil {
		return userns.Range{}, err
	}
	return r, nil
}

// free finds the lowest pool range overlapping no lease. Leases are walked
// in start order while the candidate moves past each one it hits, aligned
// to the pool's range grid, so the cost is O(n log n) in leases rather than
// proportional to the pool size.
func (a *Allocator) free(leases []Lease) (userns.Range, bool) {
	rs := make([]userns.Range, len(leases))
	for i, l := range leases {
		rs[i] = l.Range
	}
	slices.SortFunc(rs, func(x, y userns.Range) int { return cmp.Compare(x.Start, y.Start) })
	start, size := uint64(a.pool.Start), uint64(a.size)
	limit := start + uint64(a.pool.Size)/size*size
	cand := start
	for _, r := range rs {
		if cand+size > limit {
			return userns.Range{}, false
		}
		if r.End() <= cand {
			continue
		}
		if uint64(r.Start) >= cand+size {
			break
		}
		// r overlaps the candidate: move to the first grid slot after it.
		cand = start + (r.End()-start+size-1)/size*size
	}
	if cand+size > limit {
		return userns.Range{}, false
	}
	return userns.Range{Start: uint32(cand), Size: a.size}, true
}

// Lookup returns key's lease (a LeaseKey, or a bare ID for a version 1
// lease), or an ErrNotFound error. It takes no lock: leases are replaced by
// rename, so a read sees a whole file or none.
func (a *Allocator) Lookup(key string) (Lease, error) {
	if _, _, err := splitKey(key); err != nil {
		return Lease{}, err
	}
	return a.read(a.leasePath(key))
}

// Release frees key's range (a LeaseKey, or a bare ID for a version 1
// lease). Releasing a key without a lease is not an error, so rollback and
// teardown may both call it.
func (a *Allocator) Release(key string) error {
	if _, _, err := splitKey(key); err != nil {
		return err
	}
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(a.leasePath(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release lease %s: %w", key, err)
	}
	return nil
}

// Leases lists every lease.
func (a *Allocator) Leases() ([]Lease, error) {
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	return a.readAll()
}

// Reclaim releases every lease for which alive returns false and returns
// them. alive must answer false only when no process can still run in the
// range (OwnerAlive checks the owning shim; a shim whose containers can
// outlive it should also check them), because a reclaimed range goes to the
// next pod. Leftover temporary files of writers that crashed are removed,
// and so are lease files torn by a crash of an earlier boot. Other
// unreadable lease files are kept and reported in the error; the others are
// still reclaimed.
func (a *Allocator) Reclaim(alive func(Lease) bool) ([]Lease, error) {
	unlock, err := a.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	ents, err := os.ReadDir(a.leaseDir())
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	var (
		released []Lease
		errs     []error
	)
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(a.leaseDir(), name)
		if fileutil.IsTemp(name) {
			// Every writer holds the lock, so no tmp file is in flight now.
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if !isLeaseFile(name) {
			continue
		}
		l, err := a.read(p)
		if errors.Is(err, errEarlierBoot) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if alive(l) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("reclaim lease %s: %w", l.Key, err))
			continue
		}
		released = append(released, l)
	}
	return released, errors.Join(errs...)
}

func (a *Allocator) leaseDir() string { return filepath.Join(a.dir, "leases") }

func (a *Allocator) leasePath(key string) string {
	return filepath.Join(a.leaseDir(), key+".json")
}

func isLeaseFile(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".json")
}

// lock takes the in-process mutex and the cross-process flock.
func (a *Allocator) lock() (func(), error) {
	a.mu.Lock()
	f, err := os.OpenFile(filepath.Join(a.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		a.mu.Unlock()
		return nil, fmt.Errorf("open lease lock: %w", err)
	}
	if err := fileutil.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		a.mu.Unlock()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		// Closing the only descriptor of this open file drops the flock.
		f.Close()
		a.mu.Unlock()
	}, nil
}

// readAll reads every lease; the caller holds the lock.
func (a *Allocator) readAll() ([]Lease, error) {
	ents, err := os.ReadDir(a.leaseDir())
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	var out []Lease
	for _, e := range ents {
		if !isLeaseFile(e.Name()) {
			continue
		}
		l, err := a.read(filepath.Join(a.leaseDir(), e.Name()))
		if errors.Is(err, errEarlierBoot) {
			continue // its range is free: nothing of that boot runs
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// read parses and checks one lease file.
func (a *Allocator) read(path string) (Lease, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Lease{}, fmt.Errorf("lease %s: %w", strings.TrimSuffix(filepath.Base(path), ".json"), userns.ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("read lease %s: %w", path, err)
	}
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		return Lease{}, corrupt(path, err)
	}
	ns, id, kerr := splitKey(l.Key)
	switch {
	case l.Version != leaseVersion && l.Version != leaseVersionBare:
		err = fmt.Errorf("unknown version %d", l.Version)
	case kerr != nil:
		err = kerr
	case l.Version == leaseVersionBare && (ns != "" || l.Namespace != ""):
		err = fmt.Errorf("version 1 lease with a namespaced key %q", l.Key)
	case l.Version == leaseVersion && (ns == "" || ns != l.Namespace || id != l.ID):
		err = fmt.Errorf("key %q does not match namespace %q and ID %q", l.Key, l.Namespace, l.ID)
	case l.Key+".json" != filepath.Base(path):
		err = fmt.Errorf("key %q does not match the file name", l.Key)
	case l.Size == 0 || l.End() > userns.MaxIDEnd:
		err = fmt.Errorf("invalid range %d+%d", l.Start, l.Size)
	}
	if err != nil {
		return Lease{}, corrupt(path, err)
	}
	if l.Version == leaseVersionBare {
		l.ID = l.Key
	}
	return l, nil
}

// errEarlierBoot marks a lease file that is unreadable and was written
// before this boot: a write that a crash of the machine tore (write does
// not sync). Nothing of an earlier boot runs, so its range is free.
var errEarlierBoot = errors.New("torn by a crash before this boot")

// corrupt is the error for the lease file at path that failed to parse or
// check (why). A file written before this boot is a torn write of a dead
// lease (errEarlierBoot, and ErrNotFound to a lookup); any other is a
// corruption no pod start may guess past.
func corrupt(path string, why error) error {
	if old, err := fileutil.ModifiedBeforeBoot(path); err == nil && old {
		return fmt.Errorf("lease file %s: %v, %w: %w", path, why, errEarlierBoot, userns.ErrNotFound)
	}
	return fmt.Errorf("lease file %s: %v (remove it once no pod uses its range): %w", path, why, userns.ErrCorruptState)
}

// write stores l atomically: a reader, or a shim that crashes halfway, sees
// the old file or the new one, never a torn one. It does not sync, because
// a lease only matters while its owner runs, and no owner outlives a crash
// of the machine (Owner.Alive compares boot IDs); a torn file left by such
// a crash is recognised by corrupt. Two fsyncs per pod start were about a
// millisecond each.
func (a *Allocator) write(l Lease) error {
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode lease %s: %w", l.Key, err)
	}
	if err := fileutil.ReplaceFile(a.leasePath(l.Key), data, 0o600); err != nil {
		return fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	return nil
}

// splitKey checks a lease key and splits it: "NAMESPACE@ID", or a bare ID
// (version 1 leases; ns is then empty).
func splitKey(key string) (ns, id string, err error) {
	ns, id, qualified := strings.Cut(key, keySep)
	if !qualified {
		ns, id = "", key
	} else if err := validID(ns); err != nil {
		return "", "", fmt.Errorf("lease key %q: namespace %w", key, err)
	}
	if err := validID(id); err != nil {
		return "", "", fmt.Errorf("lease key %q: ID %w", key, err)
	}
	return ns, id, nil
}

// validID accepts containerd-style identifiers, which are safe file names:
// letters, digits, '_', '.', '-', starting with a letter or digit (so a key
// can never name the lock, a temporary file or a parent directory).
func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%q: must be 1 to %d characters: %w", id, maxIDLen, userns.ErrInvalid)
	}
	for i, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '_' || r == '.' || r == '-'):
		default:
			return fmt.Errorf("%q: invalid character %q: %w", id, r, userns.ErrInvalid)
		}
	}
	return nil
}
