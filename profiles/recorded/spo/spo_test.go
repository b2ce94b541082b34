package spo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/internal/golden"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.yaml.in/yaml/v3"

	"github.com/stockade-dev/stockade/profiles/recorded"
)

var (
	t0         = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	shopWebApp = recorded.Name{Namespace: "shop", Workload: "web", Container: "app"}
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// goldenProfile is two recordings of a web server on amd64, with two
// images (one without a digest): the same profile as package recorded's
// golden tests use, built through its exported API.
func goldenProfile(t *testing.T) *recorded.Profile {
	t.Helper()
	first := recorded.New(shopWebApp, recorded.Image{Name: "docker.io/library/nginx:1.27", Digest: digestOf("nginx")}, t0,
		map[specs.Arch][]string{
			specs.ArchX86_64: strings.Fields(`accept4 bind brk close epoll_create1 epoll_ctl epoll_wait
				fstat listen mmap openat read recvfrom sendfile setsockopt socket write writev`),
			specs.ArchX86: {"socketcall", "read", "write"},
		})
	second := recorded.New(shopWebApp, recorded.Image{Name: "docker.io/library/nginx:1.28"}, t0.Add(26*time.Hour),
		map[specs.Arch][]string{specs.ArchX86_64: {"getrandom", "read", "rt_sigsuspend"}})
	p, err := recorded.Merge(first, second)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGolden pins the export, so that every change to its shape shows up
// as a reviewable diff. Regenerate with:
// go test -tags seccomp ./profiles/recorded/spo/ -run TestGolden -update
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		file   string
		render func() ([]byte, error)
	}{
		{"amd64-spo.yaml", func() ([]byte, error) { return Manifest(goldenProfile(t), "amd64") }},
	} {
		t.Run(c.file, func(t *testing.T) {
			got, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, c.file, got)
		})
	}
}

// TestManifest reads the YAML back as SPO's field names.
func TestManifest(t *testing.T) {
	p := goldenProfile(t)
	out, err := Manifest(p, "amd64")
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

	noImages := recorded.New(shopWebApp, recorded.Image{}, t0, nil)
	out, err = Manifest(noImages, "amd64")
	if err != nil || bytes.Contains(out, []byte("stockade.dev/images")) {
		t.Errorf("without images: %v\n%s", err, out)
	}
	if _, err := Manifest(p, "s390x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unsupported arch: %v", err)
	}
	if _, err := Manifest(nil, "amd64"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("nil profile: %v", err)
	}
}

func TestObjectName(t *testing.T) {
	long := strings.Repeat("w", 200)
	name := func(workload, container string) recorded.Name {
		return recorded.Name{Namespace: "ns", Workload: workload, Container: container}
	}
	for _, tc := range []struct {
		n       recorded.Name
		want    string // "" means: check shape only
		wantErr bool
	}{
		{n: name("web", "app"), want: "web-app"},
		{n: name("web.v2", "app"), want: "web.v2-app"},
		{n: name(long, strings.Repeat("c", 100))},
		{n: name(long+".x", strings.Repeat("c", 100))},
		{n: name("a..b", "c"), wantErr: true},
		{n: name("a-.b", "c"), wantErr: true},
	} {
		got, err := objectName(tc.n)
		if tc.wantErr {
			if err == nil || !errdefs.IsInvalidArgument(err) {
				t.Errorf("objectName(%s) = %q, %v; want an invalid-argument error", tc.n, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("objectName(%s): %v", tc.n, err)
			continue
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("objectName(%s) = %q, want %q", tc.n, got, tc.want)
		}
		if len(got) > 253 || !isDNSSubdomain(got) {
			t.Errorf("objectName(%s) = %q: not a DNS subdomain", tc.n, got)
		}
	}
	// Long names that share their first 253 characters stay apart.
	a, _ := objectName(name(long, strings.Repeat("c", 100)+"1"))
	b, _ := objectName(name(long, strings.Repeat("c", 100)+"2"))
	if a == b {
		t.Errorf("two long names map to one object name %q", a)
	}
	if _, err := Manifest(&recorded.Profile{Name: name("a..b", "c")}, "amd64"); err == nil {
		t.Error("manifest with an invalid object name succeeded")
	} else if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("manifest error %v is not an invalid argument", err)
	}
}
