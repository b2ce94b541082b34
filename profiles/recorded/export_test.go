package recorded

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.yaml.in/yaml/v3"

	"github.com/stockade-dev/stockade/profiles/seccomp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenProfile is two recordings of a web server, with two images (one
// without a digest).
func goldenProfile(t *testing.T) *Profile {
	second := New(shopWebApp, Image{Name: "docker.io/library/nginx:1.28"}, t0.Add(26*time.Hour),
		map[specs.Arch][]string{specs.ArchX86_64: {"getrandom", "read", "rt_sigsuspend"}})
	return mustMerge(t, webProfile(), second)
}

func armProfile() *Profile {
	return New(Name{"shop", "web", "app"}, Image{Name: "docker.io/library/nginx:1.27"}, t0,
		map[specs.Arch][]string{
			specs.ArchAARCH64: strings.Fields("accept4 bind close epoll_pwait openat read write"),
			specs.ArchARM:     strings.Fields("read write"),
		})
}

// TestGolden pins both exports, so that every change to their shape shows
// up as a reviewable diff. Regenerate with:
// go test -tags seccomp ./profiles/recorded/ -run TestGolden -update
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		file   string
		render func() ([]byte, error)
	}{
		{"amd64-oci.json", func() ([]byte, error) {
			out, err := json.MarshalIndent(goldenProfile(t).OCI("amd64"), "", "  ")
			return append(out, '\n'), err
		}},
		{"arm64-oci.json", func() ([]byte, error) {
			out, err := json.MarshalIndent(armProfile().OCI("arm64"), "", "  ")
			return append(out, '\n'), err
		}},
		{"amd64-spo.yaml", func() ([]byte, error) { return goldenProfile(t).SeccompProfileManifest("amd64") }},
		{"amd64-stored.json", func() ([]byte, error) { return Encode(goldenProfile(t)) }},
	} {
		t.Run(c.file, func(t *testing.T) {
			got, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", c.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s; review the change and run with -update:\n%s", path, got)
			}
		})
	}
}

// TestStoredGoldenDecodes: the stored golden file is what an older
// stockade wrote; it must keep decoding.
func TestStoredGoldenDecodes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "amd64-stored.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(data, "amd64"); err != nil {
		t.Fatal(err)
	}
}

func TestOCI(t *testing.T) {
	p := goldenProfile(t)
	o := p.OCI("amd64")
	if o.DefaultAction != specs.ActErrno || o.DefaultErrnoRet == nil || *o.DefaultErrnoRet != 1 {
		t.Errorf("default %s/%v, want SCMP_ACT_ERRNO/EPERM", o.DefaultAction, o.DefaultErrnoRet)
	}
	if want := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}; !slices.Equal(o.Architectures, want) {
		t.Errorf("architectures %v, want %v", o.Architectures, want)
	}
	if len(o.Syscalls) != 1 || o.Syscalls[0].Action != specs.ActAllow || len(o.Syscalls[0].Args) != 0 {
		t.Fatalf("rules %+v, want one unconditional allow rule", o.Syscalls)
	}
	names := o.Syscalls[0].Names
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("names not sorted and unique: %v", names)
	}
	for _, n := range append(p.Names(), seccomp.InitSyscalls()...) {
		if !slices.Contains(names, n) {
			t.Errorf("%s missing from the allow-list", n)
		}
	}
	// Pure: the profile is unchanged and a second call gives the same.
	before := mustEncode(t, p)
	again, _ := json.Marshal(p.OCI("amd64"))
	first, _ := json.Marshal(o)
	if !bytes.Equal(first, again) || !bytes.Equal(before, mustEncode(t, p)) {
		t.Error("OCI is not deterministic or changed the profile")
	}
	if act, errno := seccomp.Evaluate(o, "mount", [6]uint64{}); act != specs.ActErrno || errno != 1 {
		t.Errorf("mount: %s/%d, want ERRNO/EPERM", act, errno)
	}
	if act, _ := seccomp.Evaluate(o, "accept4", [6]uint64{}); act != specs.ActAllow {
		t.Errorf("accept4: %s, want allowed", act)
	}
}

// TestOCICompiles: libseccomp loads the exported profile on every ABI,
// names that exist on only some of them included (socketcall).
func TestOCICompiles(t *testing.T) {
	if !seccomp.CompileSupported {
		t.Skip("built without libseccomp (-tags seccomp, cgo)")
	}
	for _, c := range []struct {
		goarch string
		p      *Profile
		native specs.Arch
	}{
		{"amd64", goldenProfile(t), specs.ArchX86_64},
		{"arm64", armProfile(), specs.ArchAARCH64},
	} {
		if _, err := seccomp.Compile(c.p.OCI(c.goarch), c.native); err != nil {
			t.Errorf("%s: %v", c.goarch, err)
		}
	}
}

// TestSeccompProfileManifest reads the YAML back as SPO's field names.
func TestSeccompProfileManifest(t *testing.T) {
	p := goldenProfile(t)
	out, err := p.SeccompProfileManifest("amd64")
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name        string            `yaml:"name"`
			Namespace   string            `yaml:"namespace"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			DefaultAction string   `yaml:"defaultAction"`
			Architectures []string `yaml:"architectures"`
			Syscalls      []struct {
				Action string   `yaml:"action"`
				Names  []string `yaml:"names"`
			} `yaml:"syscalls"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	if err := dec.Decode(&obj); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if obj.APIVersion != "security-profiles-operator.x-k8s.io/v1beta1" || obj.Kind != "SeccompProfile" {
		t.Errorf("apiVersion %q kind %q", obj.APIVersion, obj.Kind)
	}
	if obj.Metadata.Name != "web-app" || obj.Metadata.Namespace != "shop" {
		t.Errorf("metadata %+v", obj.Metadata)
	}
	if got := obj.Metadata.Annotations["stockade.dev/recorded-from"]; got != "shop/web/app" {
		t.Errorf("recorded-from %q", got)
	}
	wantImages := "docker.io/library/nginx:1.27@" + digestOf("nginx") + ",docker.io/library/nginx:1.28"
	if got := obj.Metadata.Annotations["stockade.dev/images"]; got != wantImages {
		t.Errorf("images %q, want %q", got, wantImages)
	}
	oci := p.OCI("amd64")
	if obj.Spec.DefaultAction != "SCMP_ACT_ERRNO" || len(obj.Spec.Syscalls) != 1 || obj.Spec.Syscalls[0].Action != "SCMP_ACT_ALLOW" ||
		!slices.Equal(obj.Spec.Syscalls[0].Names, oci.Syscalls[0].Names) ||
		!slices.Equal(obj.Spec.Architectures, []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}) {
		t.Errorf("spec %+v differs from the OCI export", obj.Spec)
	}

	noImages := New(shopWebApp, Image{}, t0, nil)
	out, err = noImages.SeccompProfileManifest("amd64")
	if err != nil || bytes.Contains(out, []byte("stockade.dev/images")) {
		t.Errorf("without images: %v\n%s", err, out)
	}
	if _, err := p.SeccompProfileManifest("s390x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unsupported arch: %v", err)
	}
}

func TestSPOName(t *testing.T) {
	long := strings.Repeat("w", 200)
	for _, tc := range []struct {
		n       Name
		want    string // "" means: check shape only
		wantErr bool
	}{
		{n: Name{"ns", "web", "app"}, want: "web-app"},
		{n: Name{"ns", "web.v2", "app"}, want: "web.v2-app"},
		{n: Name{"ns", long, strings.Repeat("c", 100)}},
		{n: Name{"ns", long + ".x", strings.Repeat("c", 100)}},
		{n: Name{"ns", "a..b", "c"}, wantErr: true},
		{n: Name{"ns", "a-.b", "c"}, wantErr: true},
	} {
		got, err := spoName(tc.n)
		if tc.wantErr {
			if err == nil || !errdefs.IsInvalidArgument(err) {
				t.Errorf("spoName(%s) = %q, %v; want an invalid-argument error", tc.n, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("spoName(%s): %v", tc.n, err)
			continue
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("spoName(%s) = %q, want %q", tc.n, got, tc.want)
		}
		if len(got) > 253 || !isDNSSubdomain(got) {
			t.Errorf("spoName(%s) = %q: not a DNS subdomain", tc.n, got)
		}
	}
	// Long names that share their first 253 characters stay apart.
	a, _ := spoName(Name{"ns", long, strings.Repeat("c", 100) + "1"})
	b, _ := spoName(Name{"ns", long, strings.Repeat("c", 100) + "2"})
	if a == b {
		t.Errorf("two long names map to one object name %q", a)
	}
	if _, err := (&Profile{Name: Name{"ns", "a..b", "c"}}).SeccompProfileManifest("amd64"); err == nil {
		t.Error("manifest with an invalid object name succeeded")
	} else if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("manifest error %v is not an invalid argument", err)
	}
}
