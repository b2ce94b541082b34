package profilestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/stockade-dev/stockade/node/fileutil"
	"github.com/stockade-dev/stockade/profiles/recorded"
	"golang.org/x/sys/unix"
)

// Store is a directory of recorded profiles, one file per name at
// <Dir>/<namespace>/<workload>/<container>.json.
type Store struct {
	Dir string
	// GOARCH is the architecture profiles are validated for; "" means
	// runtime.GOARCH. A store is node-local, so only tests set it.
	GOARCH string
}

const (
	ext     = ".json"
	lockExt = ".lock"
)

// Open returns the store in dir, which must be an absolute path to an
// existing directory: the store is node configuration, and creating it
// here would hide a typo in the path.
func Open(dir string) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("profile store %q: not an absolute path: %w", dir, errdefs.ErrInvalidArgument)
	}
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("profile store %s: does not exist", dir))
	case err != nil:
		return nil, storeErr(dir, err)
	case !fi.IsDir():
		return nil, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf("profile store %s: not a directory", dir))
	}
	return &Store{Dir: dir}, nil
}

func (s *Store) goarch() string {
	if s.GOARCH == "" {
		return runtime.GOARCH
	}
	return s.GOARCH
}

// Path is the file that holds n.
func (s *Store) Path(n recorded.Name) string {
	return filepath.Join(s.Dir, n.Namespace, n.Workload, n.Container+ext)
}

// storeErr says which store an I/O error concerns, and classifies the
// errors an operator fixes on the node: a read-only store (a failed
// precondition) and missing permissions.
func storeErr(dir string, err error) error {
	switch {
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("profile store %s: %w: %w", dir, err, errdefs.ErrFailedPrecondition)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("profile store %s: %w: %w", dir, err, errdefs.ErrPermissionDenied)
	}
	return fmt.Errorf("profile store %s: %w", dir, err)
}

func (s *Store) notFound(n recorded.Name) error {
	return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("recorded profile %q not found in store %s", n.String(), s.Dir))
}

// Load returns the stored profile n. Writers replace files by rename, so
// a reader needs no lock and never sees a partial file.
func (s *Store) Load(n recorded.Name) (*recorded.Profile, error) {
	if err := n.Validate(); err != nil {
		return nil, err
	}
	p, err := s.read(n)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, s.notFound(n)
	}
	return p, nil
}

// read returns the stored profile n, or nil when there is none.
func (s *Store) read(n recorded.Name) (*recorded.Profile, error) {
	path := s.Path(n)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr(s.Dir, err)
	}
	p, err := recorded.Decode(data, s.goarch())
	if err != nil {
		return nil, fmt.Errorf("recorded profile %q, file %s: %w", n.String(), path, err)
	}
	if p.Name != n {
		return nil, fmt.Errorf("recorded profile %q, file %s: the file holds profile %q (copied or moved by hand?): %w", n.String(), path, p.Name.String(), errdefs.ErrDataLoss)
	}
	return p, nil
}

// Save merges p into the stored profile of its name (or stores it, if
// there is none) and returns the result. Shims of several replicas may
// save one name at once; an exclusive lock on <path>.lock serialises the
// read-merge-write, and the write is a rename of a synced temporary file,
// so a crash leaves the old or the new profile. A corrupt stored profile
// is neither merged into nor replaced: the error (ErrDataLoss) names the
// file for the operator to look at.
func (s *Store) Save(p *recorded.Profile) (*recorded.Profile, error) {
	if p == nil {
		return nil, fmt.Errorf("save recorded profile: nil profile: %w", errdefs.ErrInvalidArgument)
	}
	if err := p.ValidateUnsealed(s.goarch()); err != nil {
		return nil, fmt.Errorf("save recorded profile %s: %w: %w", p.Name, err, errdefs.ErrInvalidArgument)
	}
	n := p.Name
	path := s.Path(n)
	unlock, err := s.lock(n, true)
	if err != nil {
		return nil, fmt.Errorf("save recorded profile %s: %w", n, err)
	}
	defer unlock()
	old, err := s.read(n)
	if errdefs.IsDataLoss(err) {
		return nil, fmt.Errorf("save recorded profile %s: not merging into or replacing the corrupt stored profile; move %s away to start the profile over: %w", n, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("save recorded profile %s: %w", n, err)
	}
	merged := recorded.Normalize(p)
	if old != nil {
		if merged, err = recorded.Merge(old, p); err != nil {
			return nil, err
		}
	}
	data, err := recorded.Encode(merged)
	if err != nil {
		return nil, fmt.Errorf("save recorded profile %s: %w", n, err)
	}
	if err := fileutil.WriteFile(path, data, 0o644); err != nil {
		return nil, fmt.Errorf("save recorded profile %s: %w", n, storeErr(s.Dir, err))
	}
	return merged, nil
}

// ErrChanged is Replace's answer when the stored profile is no longer the
// one the caller read: a shim saved a recording in between. It is a
// failed precondition; the caller reads again.
var ErrChanged = fmt.Errorf("the stored profile changed since it was read: %w", errdefs.ErrFailedPrecondition)

// Replace writes p (sealed, as Encode makes it) as the stored profile of
// its name, but only if the stored one still has checksum ifChecksum (""
// when there was none). Save merges, which suits a shim adding one
// recording; a node agent writing back the cluster's merged profile must
// not merge (runs would count twice) and must not overwrite a recording
// saved since it read the store. Replace takes Save's lock, so the two
// are serialised.
func (s *Store) Replace(p *recorded.Profile, ifChecksum string) error {
	if p == nil {
		return fmt.Errorf("replace recorded profile: nil profile: %w", errdefs.ErrInvalidArgument)
	}
	if err := p.Validate(s.goarch()); err != nil {
		return fmt.Errorf("replace recorded profile %s: %w", p.Name, err)
	}
	n := p.Name
	unlock, err := s.lock(n, true)
	if err != nil {
		return fmt.Errorf("replace recorded profile %s: %w", n, err)
	}
	defer unlock()
	old, err := s.read(n)
	if err != nil {
		return fmt.Errorf("replace recorded profile %s: %w", n, err)
	}
	cur := ""
	if old != nil {
		cur = old.Checksum
	}
	if cur != ifChecksum {
		return fmt.Errorf("replace recorded profile %s: %w", n, ErrChanged)
	}
	data, err := recorded.Encode(p)
	if err != nil {
		return fmt.Errorf("replace recorded profile %s: %w", n, err)
	}
	if err := fileutil.WriteFile(s.Path(n), data, 0o644); err != nil {
		return fmt.Errorf("replace recorded profile %s: %w", n, storeErr(s.Dir, err))
	}
	return nil
}

// lock takes the exclusive lock of n, creating its directories when
// create is set. Delete unlinks lock files (and empties directories)
// while holding them; fileutil.Lock re-locks a replaced file, and a
// directory removed between MkdirAll and the open is made again.
func (s *Store) lock(n recorded.Name, create bool) (unlock func(), err error) {
	path := s.Path(n) + lockExt
	for attempt := 0; ; attempt++ {
		if create {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, storeErr(s.Dir, err)
			}
		}
		unlock, err := fileutil.Lock(path, 0o644)
		if errors.Is(err, fs.ErrNotExist) && create && attempt < 100 {
			continue // Delete removed the emptied directories just now
		}
		if err != nil {
			return nil, storeErr(s.Dir, err)
		}
		return unlock, nil
	}
}

// List returns every stored profile, sorted by name. Profiles that cannot
// be read are reported in the errors, each naming its file, and left out.
func (s *Store) List() ([]*recorded.Profile, []error) {
	var (
		profiles []*recorded.Profile
		errs     []error
	)
	namespaces, err := readDirs(s.Dir)
	if err != nil {
		return nil, []error{storeErr(s.Dir, err)}
	}
	for _, ns := range namespaces {
		workloads, err := readDirs(filepath.Join(s.Dir, ns))
		if err != nil {
			errs = append(errs, storeErr(s.Dir, err))
			continue
		}
		for _, w := range workloads {
			dir := filepath.Join(s.Dir, ns, w)
			entries, err := os.ReadDir(dir)
			if err != nil {
				errs = append(errs, storeErr(s.Dir, err))
				continue
			}
			for _, e := range entries {
				ctr, ok := strings.CutSuffix(e.Name(), ext)
				if !ok || !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
					continue // lock and temporary files
				}
				n := recorded.Name{Namespace: ns, Workload: w, Container: ctr}
				if err := n.Validate(); err != nil {
					errs = append(errs, fmt.Errorf("profile store %s: file %s: not a recorded profile: %w: %w", s.Dir, filepath.Join(dir, e.Name()), err, errdefs.ErrDataLoss))
					continue
				}
				p, err := s.read(n)
				switch {
				case err != nil:
					errs = append(errs, err)
				case p != nil: // nil: deleted since the directory was read
					profiles = append(profiles, p)
				}
			}
		}
	}
	slices.SortFunc(profiles, func(a, b *recorded.Profile) int { return compareNames(a.Name, b.Name) })
	return profiles, errs
}

func compareNames(a, b recorded.Name) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(a.Workload, b.Workload); c != 0 {
		return c
	}
	return strings.Compare(a.Container, b.Container)
}

// readDirs lists the subdirectories of dir, skipping hidden ones.
func readDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Delete removes the stored profile n, its lock file and the directories
// it leaves empty.
func (s *Store) Delete(n recorded.Name) error {
	if err := n.Validate(); err != nil {
		return err
	}
	unlock, err := s.lock(n, false)
	if errors.Is(err, fs.ErrNotExist) {
		return s.notFound(n)
	}
	if err != nil {
		return fmt.Errorf("delete recorded profile %s: %w", n, err)
	}
	path := s.Path(n)
	err = os.Remove(path)
	// Unlinked while held: a waiting Save notices and locks a new file.
	_ = os.Remove(path + lockExt)
	unlock()
	if errors.Is(err, fs.ErrNotExist) {
		return s.notFound(n)
	}
	if err != nil {
		return fmt.Errorf("delete recorded profile %s: %w", n, storeErr(s.Dir, err))
	}
	wdir := filepath.Dir(path)
	// These fail, as they should, while another profile or lock is there.
	if os.Remove(wdir) == nil {
		_ = os.Remove(filepath.Dir(wdir))
	}
	return nil
}
