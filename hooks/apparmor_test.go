package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/node/apparmorhost"
	"github.com/stockade-dev/stockade/profiles/apparmor"
)

const testBootID = "0f0e0d0c-0b0a-0908-0706-050403020100"

// fakeAppArmor is a host whose kernel state lives in a map. Loads are
// compiled with the real apparmor_parser (-Q -K) when it is installed, so
// the profiles the step hands to the kernel are known to compile.
type fakeAppArmor struct {
	t       *testing.T
	enabled bool
	mu      sync.Mutex
	loaded  map[string]bool
	calls   []string
}

func newFakeAppArmor(t *testing.T, enabled bool) *fakeAppArmor {
	return &fakeAppArmor{t: t, enabled: enabled, loaded: map[string]bool{"my-localhost-profile": true}}
}

func (f *fakeAppArmor) Probe() apparmorhost.Status {
	if !f.enabled {
		return apparmorhost.Status{Reason: "the kernel has no AppArmor support (fake)"}
	}
	return apparmorhost.Status{Enabled: true, Parser: "/fake/apparmor_parser", ABI: "abi/3.0", Label: "unconfined"}
}

func (f *fakeAppArmor) ProfileLoaded(name string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loaded[name], nil
}

func (f *fakeAppArmor) Run(ctx context.Context, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	file := args[len(args)-1]
	name := filepath.Base(file)
	f.calls = append(f.calls, args[0]+" "+name)
	switch args[0] {
	case "--replace":
		if parser := (apparmorhost.Host{}).Probe().Parser; parser != "" {
			if out, err := exec.CommandContext(ctx, parser, "-Q", "-K", file).CombinedOutput(); err != nil {
				return out, err
			}
		}
		f.loaded[name] = true
	case "--remove":
		f.loaded[name] = false
	}
	return nil, nil
}

func testNode(t *testing.T) *config.Config {
	n := config.Default()
	n.StateDir = t.TempDir()
	return n
}

func testStep(f *fakeAppArmor) *AppArmorStep {
	return &AppArmorStep{host: f, parser: f, bootID: testBootID}
}

func testContainer(node *config.Config, requested string) *Container {
	return &Container{
		ID:   "c1",
		Node: node,
		Pod:  cri.Pod{Kubernetes: true, Namespace: "shop", Name: "web-0"},
		Spec: &specs.Spec{
			Root: &specs.Root{Path: "rootfs"},
			Process: &specs.Process{
				Args:            []string{"/app"},
				ApparmorProfile: requested,
				Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}},
			},
			Mounts: []specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rw"}},
			},
		},
	}
}

func captureLogs(t *testing.T) (context.Context, *bytes.Buffer) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(l))
	return namespaces.WithNamespace(ctx, "k8s.io"), &buf
}

func TestAppArmorSkippedWithoutAppArmor(t *testing.T) {
	ctx, logs := captureLogs(t)
	s := testStep(newFakeAppArmor(t, false))
	node := testNode(t)
	for i, requested := range []string{"runtime/default", "my-localhost-profile"} {
		c := testContainer(node, requested)
		undo, err := s.Apply(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if undo != nil {
			t.Error("undo returned although nothing was loaded")
		}
		if c.Spec.Process.ApparmorProfile != "" {
			t.Errorf("container %d: profile %q left in the spec; runc cannot apply it here", i, c.Spec.Process.ApparmorProfile)
		}
		if want := "skipped: the kernel has no AppArmor support (fake)"; c.Result.AppArmorState != want {
			t.Errorf("state %q, want %q", c.Result.AppArmorState, want)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "apparmor unavailable"); n != 1 {
		t.Errorf("logged the skip %d times, want once:\n%s", n, out)
	}
	for _, want := range []string{"level=info", `reason="the kernel has no AppArmor support (fake)"`, "container_id=c1", "pod=web-0", "namespace=shop"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestAppArmorRequiredRefuses(t *testing.T) {
	ctx, _ := captureLogs(t)
	node := testNode(t)
	node.AppArmor.Required = true
	c := testContainer(node, "")
	_, err := testStep(newFakeAppArmor(t, false)).Apply(ctx, c)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("err = %v, want failed precondition", err)
	}
	for _, want := range []string{"apparmor.required", "no AppArmor support"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestAppArmorGeneratedProfile(t *testing.T) {
	ctx, _ := captureLogs(t)
	f := newFakeAppArmor(t, true)
	s := testStep(f)
	node := testNode(t)

	c := testContainer(node, "runtime/default")
	undo, err := s.Apply(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	name := c.Spec.Process.ApparmorProfile
	if !apparmor.ValidName(name) || c.Result.AppArmorProfile != name || c.Result.AppArmorState != "enforce" {
		t.Fatalf("spec profile %q, result %+v", name, c.Result)
	}
	if !f.loaded[name] {
		t.Fatal("profile not loaded")
	}
	src, err := os.ReadFile(filepath.Join(node.AppArmorCacheDir(), "src", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"capability chown,", "capability net_bind_service,", "flags=(attach_disconnected,mediate_deleted)"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("loaded profile lacks %q", want)
		}
	}

	// A second container with the same spec shares the profile.
	c2 := testContainer(node, "")
	c2.ID = "c2"
	undo2, err := s.Apply(ctx, c2)
	if err != nil || c2.Spec.Process.ApparmorProfile != name {
		t.Fatalf("second container: %v, profile %q", err, c2.Spec.Process.ApparmorProfile)
	}
	if err := undo(ctx); err != nil || !f.loaded[name] {
		t.Fatalf("first undo: %v; loaded %v", err, f.loaded[name])
	}
	if err := undo2(ctx); err != nil || f.loaded[name] {
		t.Fatalf("last undo: %v; still loaded %v", err, f.loaded[name])
	}
}

func TestAppArmorModeFollowsSeccomp(t *testing.T) {
	ctx, _ := captureLogs(t)
	s := testStep(newFakeAppArmor(t, true))
	for _, tc := range []struct{ node, result, want string }{
		{"enforce", "", "enforce"},
		{"complain", "", "complain"},
		{"enforce", "complain", "complain"},
		{"complain", "enforce", "enforce"},
	} {
		node := testNode(t)
		node.Seccomp.Mode = tc.node
		c := testContainer(node, "")
		c.Result.SeccompMode = tc.result
		if _, err := s.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
		if c.Result.AppArmorState != tc.want {
			t.Errorf("node %s, seccomp step %q: apparmor mode %q, want %s", tc.node, tc.result, c.Result.AppArmorState, tc.want)
		}
		src, _ := os.ReadFile(filepath.Join(node.AppArmorCacheDir(), "src", c.Result.AppArmorProfile))
		if got := strings.Contains(string(src), ",complain)"); got != (tc.want == "complain") {
			t.Errorf("%+v: complain flag in profile = %v", tc, got)
		}
	}
}

func TestAppArmorLocalhostProfiles(t *testing.T) {
	ctx, logs := captureLogs(t)
	f := newFakeAppArmor(t, true)
	s := testStep(f)

	allow := testNode(t)
	allow.AppArmor.AllowLocalhostProfiles = true
	c := testContainer(allow, "localhost/my-localhost-profile")
	undo, err := s.Apply(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if undo != nil || c.Spec.Process.ApparmorProfile != "my-localhost-profile" || c.Result.AppArmorState != "localhost" {
		t.Errorf("honored: undo %v, profile %q, state %q", undo != nil, c.Spec.Process.ApparmorProfile, c.Result.AppArmorState)
	}
	if len(f.calls) != 0 {
		t.Errorf("parser called for a localhost profile: %v", f.calls)
	}

	_, err = s.Apply(ctx, testContainer(allow, "not-loaded-profile"))
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "not-loaded-profile") {
		t.Errorf("missing localhost profile: err = %v", err)
	}

	refuse := testNode(t)
	c = testContainer(refuse, "my-localhost-profile")
	if _, err := s.Apply(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Spec.Process.ApparmorProfile, apparmor.NamePrefix) {
		t.Errorf("refused localhost profile still applied: %q", c.Spec.Process.ApparmorProfile)
	}
	if !strings.Contains(logs.String(), "localhost apparmor profile refused") {
		t.Errorf("refusal not logged:\n%s", logs)
	}

	// Asking for no confinement gets the generated profile too.
	c = testContainer(allow, "unconfined")
	if _, err := s.Apply(ctx, c); err != nil || !strings.HasPrefix(c.Spec.Process.ApparmorProfile, apparmor.NamePrefix) {
		t.Errorf("unconfined: %v, profile %q", err, c.Spec.Process.ApparmorProfile)
	}
}

func TestAppArmorBadSpec(t *testing.T) {
	ctx, _ := captureLogs(t)
	c := testContainer(testNode(t), "")
	c.Spec.Mounts = append(c.Spec.Mounts, specs.Mount{Destination: "data/relative", Options: []string{"rbind"}})
	_, err := testStep(newFakeAppArmor(t, true)).Apply(ctx, c)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"data/relative"`) {
		t.Errorf("err = %v, want invalid argument naming the destination", err)
	}
}

func TestAppArmorLoadFailureIsInternal(t *testing.T) {
	ctx, _ := captureLogs(t)
	s := &AppArmorStep{host: newFakeAppArmor(t, true), parser: failingParser{}, bootID: testBootID}
	_, err := s.Apply(ctx, testContainer(testNode(t), ""))
	if !errdefs.IsInternal(err) || !errors.Is(err, apparmorhost.ErrParser) {
		t.Errorf("err = %v, want internal parser error", err)
	}
}

type failingParser struct{}

func (failingParser) Run(context.Context, ...string) ([]byte, error) {
	return []byte("syntax error"), fmt.Errorf("exit status 1")
}

// TestAppArmorRollback checks that a later step's failure releases the
// profile through the pipeline's rollback.
func TestAppArmorRollback(t *testing.T) {
	ctx, _ := captureLogs(t)
	f := newFakeAppArmor(t, true)
	var ran, undone []string
	p := Pipeline{testStep(f), fakeStep{name: "later", fail: true, log: &ran, undone: &undone}}
	c := testContainer(testNode(t), "")
	if _, err := p.Apply(ctx, c); err == nil {
		t.Fatal("pipeline did not fail")
	}
	if f.loaded[c.Result.AppArmorProfile] {
		t.Error("profile still loaded after rollback")
	}
}

func TestReleaseAppArmorWithoutLease(t *testing.T) {
	ctx, _ := captureLogs(t)
	node := testNode(t)
	// On this host (no AppArmor in CI's kernel) releasing must still
	// succeed and clean up.
	if err := ReleaseAppArmor(ctx, node, "stockade-0123456789abcdef", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseAppArmor(ctx, node, "my-localhost-profile", "c1"); err != nil {
		t.Fatal(err)
	}
}

func TestAppArmorConfigKeys(t *testing.T) {
	c, err := config.Parse([]byte("[apparmor]\nrequired = true\nallow_localhost_profiles = true\ncache_dir = \"/var/cache/stockade/apparmor\"\nparser_path = \"/usr/sbin/apparmor_parser\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.AppArmor.Required || !c.AppArmor.AllowLocalhostProfiles || c.AppArmorCacheDir() != "/var/cache/stockade/apparmor" {
		t.Errorf("parsed %+v", c.AppArmor)
	}
	if d := config.Default(); d.AppArmorCacheDir() != "/var/lib/stockade/apparmor/cache" {
		t.Errorf("default cache dir %q", d.AppArmorCacheDir())
	}
	for _, doc := range []string{"[apparmor]\ncache_dir = \"cache\"\n", "[apparmor]\nparser_path = \"/usr/../sbin/apparmor_parser\"\n"} {
		_, err := config.Parse([]byte(doc))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "apparmor.") {
			t.Errorf("%q: err = %v, want one naming the apparmor key", doc, err)
		}
	}
}
