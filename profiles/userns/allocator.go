package userns

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

	"golang.org/x/sys/unix"
)

// leaseVersion is written into every lease so a later format can tell old
// files apart instead of misreading them.
const leaseVersion = 1

// maxKeyLen bounds a lease key (a sandbox or container ID; containerd's
// identifiers are at most 76 characters).
const maxKeyLen = 128

// Lease records that key (a pod sandbox ID) holds a range. It lives in
// <dir>/leases/<key>.json.
type Lease struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	Range
	Owner   Owner     `json:"owner"`
	Created time.Time `json:"created"`
}

// Allocator hands out non-overlapping ranges of a pool. Its state is a
// directory shared by every shim on the node (one shim per pod): each lease
// is a small JSON file, written by tmp+rename so a reader never sees half a
// lease, and every change happens under an exclusive flock on <dir>/lock, so
// concurrent processes never pick the same range. Leases outlive the
// process: a restarted shim finds its pod's range again under the same key.
type Allocator struct {
	dir  string
	pool Pool
	// mu keeps the goroutines of one process from each parking an OS thread
	// in flock; the flock is what serialises processes.
	mu sync.Mutex
}

// NewAllocator opens (creating if needed, mode 0700) the lease directory dir
// for pool. Leases already in dir that lie outside the pool (after a pool
// change) stay valid and are never overlapped.
func NewAllocator(dir string, pool Pool) (*Allocator, error) {
	if err := pool.Validate(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("lease directory %q: must be absolute: %w", dir, ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Join(dir, "leases"), 0o700); err != nil {
		return nil, fmt.Errorf("create lease directory: %w", err)
	}
	return &Allocator{dir: dir, pool: pool}, nil
}

// Pool is the pool ranges come from.
func (a *Allocator) Pool() Pool { return a.pool }

// Dir is the lease directory.
func (a *Allocator) Dir() string { return a.dir }

// Allocate returns the range leased to key, leasing the lowest free range of
// the pool if key has none. It is idempotent: the same key always gets the
// same range until Release. An existing lease takes owner as its new owner,
// so a shim that re-creates a pod after its predecessor died keeps the
// range from being reclaimed. On error nothing is written.
func (a *Allocator) Allocate(key string, owner Owner) (Range, error) {
	if err := validKey(key); err != nil {
		return Range{}, err
	}
	if owner.Pid <= 0 {
		return Range{}, fmt.Errorf("lease %s: owner pid %d: %w", key, owner.Pid, ErrInvalid)
	}
	unlock, err := a.lock()
	if err != nil {
		return Range{}, err
	}
	defer unlock()

	leases, err := a.readAll()
	if err != nil {
		return Range{}, err
	}
	for _, l := range leases {
		if l.Key != key {
			continue
		}
		if l.Owner != owner {
			l.Owner = owner
			if err := a.write(l); err != nil {
				return Range{}, err
			}
		}
		return l.Range, nil
	}
	r, ok := a.free(leases)
	if !ok {
		return Range{}, fmt.Errorf("user namespace pool %s: all %d ranges of %d IDs are leased: %w",
			a.pool, a.pool.Ranges(), RangeSize, ErrPoolExhausted)
	}
	l := Lease{Version: leaseVersion, Key: key, Range: r, Owner: owner, Created: time.Now().UTC()}
	if err := a.write(l); err != nil {
		return Range{}, err
	}
	return r, nil
}

// free finds the lowest pool range overlapping no lease. Leases are walked
// in start order while the candidate moves past each one it hits, aligned
// to the pool's range grid, so the cost is O(n log n) in leases rather than
// proportional to the pool size.
func (a *Allocator) free(leases []Lease) (Range, bool) {
	rs := make([]Range, len(leases))
	for i, l := range leases {
		rs[i] = l.Range
	}
	slices.SortFunc(rs, func(x, y Range) int { return cmp.Compare(x.Start, y.Start) })
	start := uint64(a.pool.Start)
	limit := start + uint64(a.pool.Ranges())*RangeSize
	cand := start
	for _, r := range rs {
		if cand+RangeSize > limit {
			return Range{}, false
		}
		if r.End() <= cand {
			continue
		}
		if uint64(r.Start) >= cand+RangeSize {
			break
		}
		// r overlaps the candidate: move to the first grid slot after it.
		cand = start + (r.End()-start+RangeSize-1)/RangeSize*RangeSize
	}
	if cand+RangeSize > limit {
		return Range{}, false
	}
	return Range{Start: uint32(cand), Size: RangeSize}, true
}

// Lookup returns key's lease, or an ErrNotFound error. It takes no lock:
// leases are replaced by rename, so a read sees a whole file or none.
func (a *Allocator) Lookup(key string) (Lease, error) {
	if err := validKey(key); err != nil {
		return Lease{}, err
	}
	return a.read(a.leasePath(key))
}

// Release frees key's range. Releasing a key without a lease is not an
// error, so rollback and teardown may both call it.
func (a *Allocator) Release(key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	unlock, err := a.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(a.leasePath(key)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("release lease %s: %w", key, err)
	}
	return a.syncDir()
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
// next pod. Leftover temporary files of writers that crashed are removed.
// Unreadable lease files are kept and reported in the error; the others are
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
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
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
	if len(released) > 0 {
		if err := a.syncDir(); err != nil {
			errs = append(errs, err)
		}
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
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
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
		return Lease{}, fmt.Errorf("lease %s: %w", strings.TrimSuffix(filepath.Base(path), ".json"), ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("read lease %s: %w", path, err)
	}
	var l Lease
	if err := json.Unmarshal(data, &l); err != nil {
		return Lease{}, fmt.Errorf("lease file %s: %v (remove it once no pod uses its range): %w", path, err, ErrCorruptState)
	}
	switch {
	case l.Version != leaseVersion:
		err = fmt.Errorf("unknown version %d", l.Version)
	case l.Key+".json" != filepath.Base(path):
		err = fmt.Errorf("key %q does not match the file name", l.Key)
	case l.Size == 0 || l.End() > MaxIDEnd:
		err = fmt.Errorf("invalid range %d+%d", l.Start, l.Size)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("lease file %s: %v (remove it once no pod uses its range): %w", path, err, ErrCorruptState)
	}
	return l, nil
}

// write stores l atomically: a reader or a crash sees the old file or the
// new one, never a torn one.
func (a *Allocator) write(l Lease) (err error) {
	data, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode lease %s: %w", l.Key, err)
	}
	tmp, err := os.CreateTemp(a.leaseDir(), "."+l.Key+".*.tmp")
	if err != nil {
		return fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	// Sync before rename, or a crash could leave the new name on an empty file.
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	if err = os.Rename(tmp.Name(), a.leasePath(l.Key)); err != nil {
		return fmt.Errorf("write lease %s: %w", l.Key, err)
	}
	return a.syncDir()
}

// syncDir makes a rename or removal durable.
func (a *Allocator) syncDir() error {
	d, err := os.Open(a.leaseDir())
	if err != nil {
		return fmt.Errorf("sync lease directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync lease directory: %w", err)
	}
	return nil
}

// validKey accepts containerd-style identifiers, which are safe file names:
// letters, digits, '_', '.', '-', starting with a letter or digit (so a key
// can never name the lock, a temporary file or a parent directory).
func validKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("lease key %q: must be 1 to %d characters: %w", key, maxKeyLen, ErrInvalid)
	}
	for i, r := range key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case i > 0 && (r == '_' || r == '.' || r == '-'):
		default:
			return fmt.Errorf("lease key %q: invalid character %q: %w", key, r, ErrInvalid)
		}
	}
	return nil
}
