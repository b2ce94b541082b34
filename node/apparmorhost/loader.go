package apparmorhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/stockade-dev/stockade/node/fileutil"
	"github.com/stockade-dev/stockade/profiles/apparmor"
)

// Runner runs apparmor_parser and returns its combined output.
type Runner interface {
	Run(ctx context.Context, args ...string) ([]byte, error)
}

// ExecParser runs the apparmor_parser binary at Path.
type ExecParser struct{ Path string }

// Run implements Runner.
func (p ExecParser) Run(ctx context.Context, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, p.Path, args...).CombinedOutput()
}

// Loader loads generated profiles into the kernel and unloads them when the
// last container using them is gone.
//
// There is one shim process per pod, so a profile shared by containers of
// different pods has users in several processes: the users are counted with
// one file per holder in a directory per profile, changed only under an
// exclusive flock(2) on a lock file per profile. Holder files are scoped by
// boot ID, because a reboot unloads every profile and ends every holder; a
// shim killed without releasing leaves its holder behind until reboot, which
// keeps a profile loaded but breaks nothing.
type Loader struct {
	// Host probes the host; nil means Host{}.
	Host Prober
	// Parser runs apparmor_parser; nil runs the binary Host reports.
	Parser Runner
	// StateDir holds the holder files and locks.
	StateDir string
	// CacheDir holds profile sources (content-addressed, kept across
	// unloads) and apparmor_parser's compiled cache, so that starting a
	// container with a known profile does not pay for compilation.
	CacheDir string
	// BootID scopes the holder files; "" reads the kernel's boot ID.
	BootID string
}

// Lease is one holder's use of a loaded profile.
type Lease struct {
	// Profile is the loaded profile's name; "" when Skipped.
	Profile string
	// Skipped says why nothing was loaded: the host cannot enforce AppArmor.
	Skipped string

	mu      sync.Mutex
	release func(context.Context) error
}

// State is "loaded" or "skipped: <reason>".
func (l *Lease) State() string {
	if l.Skipped != "" {
		return "skipped: " + l.Skipped
	}
	return "loaded"
}

// Release gives the profile back. Calling it again does nothing.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	r := l.release
	l.release = nil
	l.mu.Unlock()
	if r == nil {
		return nil
	}
	return r(ctx)
}

var bootIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Acquire makes sure p is loaded and records holder (for example
// "<namespace>/<container id>") as a user of it. Acquiring twice for the
// same holder counts once. On a host without AppArmor it loads nothing and
// returns a Lease whose Skipped says why.
func (l *Loader) Acquire(ctx context.Context, p apparmor.Profile, holder string) (*Lease, error) {
	st := l.host().Probe()
	if !st.Enabled {
		return &Lease{Skipped: st.Reason}, nil
	}
	if !apparmor.ValidName(p.Name) {
		return nil, &apparmor.InvalidError{Field: "profile name", Value: p.Name, Reason: "is not a generated profile name"}
	}
	if holder == "" {
		return nil, &apparmor.InvalidError{Field: "holder", Reason: "is empty"}
	}
	refs, err := l.refsDir()
	if err != nil {
		return nil, err
	}
	src, err := l.writeSource(p)
	if err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(refs, p.Name+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	holders := filepath.Join(refs, p.Name)
	hf := filepath.Join(holders, holderFile(holder))
	lease := &Lease{Profile: p.Name, release: func(ctx context.Context) error { return l.Release(ctx, p.Name, holder) }}
	if _, err := os.Stat(hf); err == nil {
		return lease, nil
	}

	// The kernel, not the holder count, says whether to load: someone may
	// have unloaded the profile behind stockade's back. An unreadable list
	// counts as not loaded, since replacing a profile is idempotent.
	if loaded, _ := l.host().ProfileLoaded(p.Name); !loaded {
		// Not -K (skip cache): the compiled cache is the point. The parser
		// keys it by the kernel's feature set under CacheDir/bin and reuses
		// it while the source is not newer, which writeSource guarantees.
		args := []string{"--replace", "--write-cache", "--cache-loc", filepath.Join(l.CacheDir, "bin"), "--", src}
		if out, err := l.parser(st).Run(ctx, args...); err != nil {
			_ = l.dropIfUnused(ctx, refs, p.Name)
			return nil, parserError(args, out, err)
		}
	}
	err = os.MkdirAll(holders, 0o700)
	if err == nil {
		err = os.WriteFile(hf, []byte(holder+"\n"), 0o600)
	}
	if err != nil {
		_ = l.dropIfUnused(ctx, refs, p.Name)
		return nil, fmt.Errorf("apparmor: record holder: %w", err)
	}
	return lease, nil
}

// Release drops holder's use of the profile called name and unloads it if
// no holder is left. Releasing a holder that holds nothing changes nothing,
// except that an unused profile is unloaded. Only the name is needed, so a
// process that lost its Lease (a restarted shim) can still release.
func (l *Loader) Release(ctx context.Context, name, holder string) error {
	if !apparmor.ValidName(name) {
		return &apparmor.InvalidError{Field: "profile name", Value: name, Reason: "is not a generated profile name"}
	}
	refs, err := l.refsDir()
	if err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(refs, name+".lock"))
	if err != nil {
		return err
	}
	defer unlock()

	err = os.Remove(filepath.Join(refs, name, holderFile(holder)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("apparmor: release holder: %w", err)
	}
	return l.dropIfUnused(ctx, refs, name)
}

// dropIfUnused unloads the profile and removes its bookkeeping if nobody
// holds it. The caller holds the profile's lock.
func (l *Loader) dropIfUnused(ctx context.Context, refs, name string) error {
	holders := filepath.Join(refs, name)
	n, err := os.ReadDir(holders)
	if len(n) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_ = os.Remove(holders)
	// Removed while held: a waiter on this inode sees it is gone and
	// retries on a fresh file (see lockFile).
	_ = os.Remove(filepath.Join(refs, name+".lock"))

	if loaded, err := l.host().ProfileLoaded(name); err == nil && !loaded {
		return nil
	}
	st := l.host().Probe()
	if !st.Enabled {
		return nil
	}
	// The parser removes profiles by the names a file declares; should the
	// kept source be gone, a stub declaring the name does as well.
	src := filepath.Join(l.CacheDir, "src", name)
	if _, err := os.Stat(src); err != nil {
		stub, err := l.writeSource(apparmor.Profile{Name: name + ".remove", Text: "profile " + name + " {}\n"})
		if err != nil {
			return err
		}
		defer os.Remove(stub)
		src = stub
	}
	args := []string{"--remove", "--", src}
	if out, err := l.parser(st).Run(ctx, args...); err != nil {
		return parserError(args, out, err)
	}
	return nil
}

func (l *Loader) host() Prober {
	if l.Host != nil {
		return l.Host
	}
	return Host{}
}

func (l *Loader) parser(st Status) Runner {
	if l.Parser != nil {
		return l.Parser
	}
	return ExecParser{Path: st.Parser}
}

// refsDir returns the holder directory for this boot, creating it, and
// removes those of earlier boots: their holders are gone and their profiles
// were unloaded by the reboot.
func (l *Loader) refsDir() (string, error) {
	if l.StateDir == "" || l.CacheDir == "" {
		return "", &apparmor.InvalidError{Field: "loader", Reason: "needs a state and a cache directory"}
	}
	boot := l.BootID
	if boot == "" {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			return "", fmt.Errorf("apparmor: read boot id: %w", err)
		}
		boot = strings.TrimSpace(string(b))
	}
	if !bootIDRe.MatchString(boot) {
		return "", &apparmor.InvalidError{Field: "boot id", Value: boot, Reason: "is not a UUID"}
	}
	if entries, err := os.ReadDir(l.StateDir); err == nil {
		for _, e := range entries {
			if e.IsDir() && e.Name() != boot && bootIDRe.MatchString(e.Name()) {
				_ = os.RemoveAll(filepath.Join(l.StateDir, e.Name()))
			}
		}
	}
	dir := filepath.Join(l.StateDir, boot)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("apparmor: %w", err)
	}
	return dir, nil
}

// writeSource stores the profile text where the parser reads it. The file
// is rewritten only if missing or different, because its modification time
// decides whether the parser's compiled cache is still valid.
func (l *Loader) writeSource(p apparmor.Profile) (string, error) {
	dir := filepath.Join(l.CacheDir, "src")
	path := filepath.Join(dir, p.Name)
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, []byte(p.Text)) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("apparmor: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+p.Name+"-*")
	if err != nil {
		return "", fmt.Errorf("apparmor: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(p.Text); err != nil {
		tmp.Close()
		return "", fmt.Errorf("apparmor: write profile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("apparmor: write profile: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("apparmor: write profile: %w", err)
	}
	return path, nil
}

// holderFile turns an arbitrary holder string into a safe file name.
func holderFile(holder string) string {
	sum := sha256.Sum256([]byte(holder))
	return hex.EncodeToString(sum[:16])
}

// lockFile takes the exclusive lock of a profile. Releasers delete the
// lock file while holding it, which fileutil.Lock allows for.
func lockFile(path string) (unlock func(), err error) {
	unlock, err = fileutil.Lock(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("apparmor: %w", err)
	}
	return unlock, nil
}
