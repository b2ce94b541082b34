package apparmorhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stockade-dev/stockade/profiles/apparmor"
	"github.com/stockade-dev/stockade/profiles/apparmor/apparmortest"
)

const testBoot = "0f0e0d0c-0b0a-0908-0706-050403020100"

// fakeKernel stands in for the kernel's set of loaded profiles; it is both
// the Prober and the Runner of the loaders under test.
type fakeKernel struct {
	t       *testing.T
	enabled bool
	mu      sync.Mutex
	loaded  map[string]bool
	loads   int
	unloads int
	fail    error
	// holders, if set, is checked on every unload: nobody may hold the
	// profile being unloaded.
	holders func(name string) int
}

func newFakeKernel(t *testing.T) *fakeKernel {
	return &fakeKernel{t: t, enabled: true, loaded: map[string]bool{}}
}

func (k *fakeKernel) Probe() Status {
	if !k.enabled {
		return Status{Reason: "the kernel has no AppArmor support (test)"}
	}
	return Status{Enabled: true, Parser: "/fake/apparmor_parser", ABI: "abi/3.0", Label: "unconfined"}
}

func (k *fakeKernel) ProfileLoaded(name string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loaded[name], nil
}

func (k *fakeKernel) Run(_ context.Context, args ...string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return []byte("AppArmor parser error at line 3: syntax error\n"), k.fail
	}
	name := strings.TrimSuffix(filepath.Base(args[len(args)-1]), ".remove")
	switch args[0] {
	case "--replace":
		k.loaded[name] = true
		k.loads++
	case "--remove":
		if k.holders != nil && k.holders(name) > 0 {
			k.t.Errorf("profile %s unloaded while held", name)
		}
		k.loaded[name] = false
		k.unloads++
	default:
		k.t.Errorf("unexpected parser call %v", args)
	}
	return nil, nil
}

func testLoader(t *testing.T, k *fakeKernel, state, cache string) *Loader {
	return &Loader{Host: k, Parser: k, StateDir: state, CacheDir: cache, BootID: testBoot}
}

func testProfile(t *testing.T) apparmor.Profile {
	p, err := apparmor.Render(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}}}}, apparmor.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoaderSkipsWithoutAppArmor(t *testing.T) {
	k := newFakeKernel(t)
	k.enabled = false
	l := testLoader(t, k, t.TempDir(), t.TempDir())
	lease, err := l.Acquire(context.Background(), testProfile(t), "k8s.io/c1")
	if err != nil {
		t.Fatal(err)
	}
	if lease.Profile != "" || lease.State() != "skipped: the kernel has no AppArmor support (test)" {
		t.Errorf("lease = %+v, state %q", lease, lease.State())
	}
	if err := lease.Release(context.Background()); err != nil || k.loads+k.unloads != 0 {
		t.Errorf("release: %v; parser calls %d", err, k.loads+k.unloads)
	}
}

func TestLoaderRefcountAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	state, cache := t.TempDir(), t.TempDir()
	// Two loaders over the same directories stand for two shim processes.
	a, b := testLoader(t, k, state, cache), testLoader(t, k, state, cache)
	p := testProfile(t)

	la, err := a.Acquire(ctx, p, "k8s.io/c1")
	if err != nil {
		t.Fatal(err)
	}
	if la.Profile != p.Name || la.State() != "loaded" || !k.loaded[p.Name] || k.loads != 1 {
		t.Fatalf("first acquire: lease %+v, kernel %+v", la, k.loaded)
	}
	lb, err := b.Acquire(ctx, p, "k8s.io/c2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, p, "k8s.io/c1"); err != nil {
		t.Fatal(err)
	}
	if k.loads != 1 {
		t.Errorf("loaded %d times, want once", k.loads)
	}

	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !k.loaded[p.Name] || k.unloads != 0 {
		t.Fatal("unloaded while the second holder still uses it")
	}
	if err := la.Release(ctx); err != nil || k.unloads != 0 {
		t.Fatalf("second release of the same lease: %v, unloads %d", err, k.unloads)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if k.loaded[p.Name] || k.unloads != 1 {
		t.Fatalf("not unloaded after the last release (unloads %d)", k.unloads)
	}
	if err := b.Release(ctx, p.Name, "k8s.io/c2"); err != nil || k.unloads != 1 {
		t.Fatalf("releasing a released holder: %v, unloads %d", err, k.unloads)
	}

	// Holders and locks are gone; the source stays for the compiled cache.
	left, _ := filepath.Glob(filepath.Join(state, testBoot, "*"))
	if len(left) != 0 {
		t.Errorf("state left behind: %v", left)
	}
	if b, err := os.ReadFile(filepath.Join(cache, "src", p.Name)); err != nil || string(b) != p.Text {
		t.Errorf("profile source not kept: %v", err)
	}
}

func TestLoaderReloadsWhatTheKernelLost(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	l := testLoader(t, k, t.TempDir(), t.TempDir())
	p := testProfile(t)
	if _, err := l.Acquire(ctx, p, "c1"); err != nil {
		t.Fatal(err)
	}
	k.loaded[p.Name] = false // someone ran apparmor_parser -R by hand
	if _, err := l.Acquire(ctx, p, "c2"); err != nil {
		t.Fatal(err)
	}
	if !k.loaded[p.Name] || k.loads != 2 {
		t.Errorf("not reloaded: loads %d", k.loads)
	}
}

func TestLoaderLoadFailure(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	k.fail = errors.New("exit status 1")
	state := t.TempDir()
	l := testLoader(t, k, state, t.TempDir())
	p := testProfile(t)
	_, err := l.Acquire(ctx, p, "c1")
	if !errors.Is(err, ErrParser) || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("err = %v, want ErrParser with the parser's output", err)
	}
	if !isInternal(err) {
		t.Errorf("%v is not an internal error", err)
	}
	if hs, _ := filepath.Glob(filepath.Join(state, testBoot, p.Name, "*")); len(hs) != 0 {
		t.Errorf("holder recorded for a failed load: %v", hs)
	}
}

func isInternal(err error) bool {
	var s interface{ System() }
	return errors.As(err, &s)
}

func TestLoaderRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	l := testLoader(t, newFakeKernel(t), t.TempDir(), t.TempDir())
	if _, err := l.Acquire(ctx, apparmor.Profile{Name: "../../etc/x", Text: "x"}, "c1"); err == nil {
		t.Error("path-like profile name accepted")
	}
	if _, err := l.Acquire(ctx, testProfile(t), ""); err == nil {
		t.Error("empty holder accepted")
	}
	if err := l.Release(ctx, "docker-default", "c1"); err == nil {
		t.Error("releasing a foreign profile accepted")
	}
}

func TestLoaderForgetsEarlierBoots(t *testing.T) {
	state := t.TempDir()
	stale := filepath.Join(state, "11111111-2222-3333-4444-555555555555", "stockade-0000000000000000")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(state, "not-a-boot-id")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	l := testLoader(t, newFakeKernel(t), state, t.TempDir())
	if _, err := l.Acquire(context.Background(), testProfile(t), "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("holders of an earlier boot kept: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("unrelated directory removed: %v", err)
	}
}

// TestLoaderConcurrent hammers one profile from many "processes" and
// checks that it is never unloaded while someone holds it.
func TestLoaderConcurrent(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	state, cache := t.TempDir(), t.TempDir()
	k.holders = func(name string) int {
		hs, _ := filepath.Glob(filepath.Join(state, testBoot, name, "*"))
		return len(hs)
	}
	p := testProfile(t)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := testLoader(t, k, state, cache)
			for i := 0; i < 40; i++ {
				lease, err := l.Acquire(ctx, p, fmt.Sprintf("w%d/c%d", w, i))
				if err != nil {
					t.Error(err)
					return
				}
				if ok, _ := k.ProfileLoaded(p.Name); !ok {
					t.Error("acquired a profile that is not loaded")
				}
				if err := lease.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if k.loaded[p.Name] || k.loads != k.unloads || k.loads == 0 {
		t.Errorf("end state: loaded %v, loads %d, unloads %d", k.loaded[p.Name], k.loads, k.unloads)
	}
}

// cachingParser runs the real apparmor_parser, turning loads into
// compile-only runs against Debian's feature file: this kernel cannot load
// profiles, but the parser's compiled cache can still be exercised.
type cachingParser struct {
	path string
	out  []string
}

func (c *cachingParser) Run(ctx context.Context, args ...string) ([]byte, error) {
	if args[0] == "--remove" {
		return nil, nil
	}
	if args[0] != "--replace" {
		return nil, fmt.Errorf("unexpected call %v", args)
	}
	real := append([]string{"-Q", "--show-cache", "-M", apparmortest.FeaturesFile}, args[1:]...)
	out, err := exec.CommandContext(ctx, c.path, real...).CombinedOutput()
	c.out = append(c.out, string(out))
	return out, err
}

func TestLoaderCompiledCache(t *testing.T) {
	parser := apparmortest.ParserPath(t)
	if _, err := os.Stat(apparmortest.FeaturesFile); err != nil {
		t.Skipf("%s missing: without a feature set the parser refuses to cache", apparmortest.FeaturesFile)
	}
	ctx := context.Background()
	k := newFakeKernel(t)
	cp := &cachingParser{path: parser}
	cache := t.TempDir()
	l := &Loader{Host: k, Parser: cp, StateDir: t.TempDir(), CacheDir: cache, BootID: testBoot}
	p := testProfile(t)

	lease, err := l.Acquire(ctx, p, "c1")
	if err != nil {
		t.Fatal(err)
	}
	compiled, _ := filepath.Glob(filepath.Join(cache, "bin", "*", p.Name))
	if len(compiled) != 1 {
		t.Fatalf("no compiled cache for %s under %s: %v\n%s", p.Name, cache, compiled, cp.out)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	k.loaded[p.Name] = false
	if _, err := l.Acquire(ctx, p, "c2"); err != nil {
		t.Fatal(err)
	}
	if len(cp.out) != 2 || !strings.Contains(cp.out[1], "Cache hit") {
		t.Errorf("second load did not hit the cache:\n%s", strings.Join(cp.out, "\n---\n"))
	}
}

// TestLoaderReleaseWithoutSource unloads by name when the kept source is
// gone (say, the cache directory was wiped while containers ran).
func TestLoaderReleaseWithoutSource(t *testing.T) {
	ctx := context.Background()
	k := newFakeKernel(t)
	cache := t.TempDir()
	l := testLoader(t, k, t.TempDir(), cache)
	p := testProfile(t)
	if _, err := l.Acquire(ctx, p, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cache, "src")); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx, p.Name, "c1"); err != nil {
		t.Fatal(err)
	}
	if k.loaded[p.Name] || k.unloads != 1 {
		t.Errorf("not unloaded: %v", k.loaded)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "src", "*")); len(left) != 0 {
		t.Errorf("stub left behind: %v", left)
	}
}
