package recorded

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.yaml.in/yaml/v3"

	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// eperm is what a syscall outside the recording fails with: "not
// permitted" rather than ENOSYS, because the call exists and a program
// that falls back on ENOSYS would hide that the profile is too narrow.
const eperm = 1

// allowed is the allow-list both exports share: everything recorded on any
// ABI, and what runc's init needs after it loads the filter, which the
// recorder never sees because it starts with the container's process.
func (p *Profile) allowed() []string {
	names := append(p.Names(), seccomp.InitSyscalls()...)
	slices.Sort(names)
	return slices.Compact(names)
}

// OCI returns p as an allow-list profile for goarch, usable as a Kubernetes
// Localhost profile: every recorded name on every ABI of goarch is allowed,
// anything else fails with EPERM. OCI rules carry no architecture, so the
// names are the union over the ABIs; libseccomp skips a name on an ABI that
// lacks it. For an unsupported goarch Architectures is empty, which limits
// the profile to the native ABI. p must be valid (Validate).
func (p *Profile) OCI(goarch string) *specs.LinuxSeccomp {
	abis, _ := seccomp.ABIs(goarch)
	errno := uint(eperm)
	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &errno,
		Architectures:   abis,
		Syscalls: []specs.LinuxSyscall{
			{Names: p.allowed(), Action: specs.ActAllow},
		},
	}
}

// SPO, the security-profiles-operator, stores its profiles as this custom
// resource (api/seccompprofile/v1beta1 in its repository). Only the fields
// an allow-list needs are written.
const (
	spoAPIVersion = "security-profiles-operator.x-k8s.io/v1beta1"
	spoKind       = "SeccompProfile"

	// AnnotationRecordedFrom and AnnotationImages are set on exported
	// SeccompProfile objects, so the cluster side can tell where a profile
	// came from.
	AnnotationRecordedFrom = "stockade.dev/recorded-from"
	AnnotationImages       = "stockade.dev/images"
)

type spoObject struct {
	APIVersion string      `yaml:"apiVersion"`
	Kind       string      `yaml:"kind"`
	Metadata   spoMetadata `yaml:"metadata"`
	Spec       spoSpec     `yaml:"spec"`
}

type spoMetadata struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Annotations map[string]string `yaml:"annotations"`
}

type spoSpec struct {
	DefaultAction string       `yaml:"defaultAction"`
	Architectures []string     `yaml:"architectures"`
	Syscalls      []spoSyscall `yaml:"syscalls"`
}

type spoSyscall struct {
	Action string   `yaml:"action"`
	Names  []string `yaml:"names"`
}

// SeccompProfileManifest returns p for goarch as a security-profiles-
// operator SeccompProfile object (YAML), named <workload>-<container> in
// p's namespace, with the same allow-list as OCI. SPO's SeccompProfile has
// no default errno, and an SCMP_ACT_ERRNO default without one fails calls
// with EPERM, as OCI's does. The images annotation is left out when no
// recording knew its image.
func (p *Profile) SeccompProfileManifest(goarch string) ([]byte, error) {
	abis, err := seccomp.ABIs(goarch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	name, err := spoName(p.Name)
	if err != nil {
		return nil, err
	}
	obj := spoObject{
		APIVersion: spoAPIVersion,
		Kind:       spoKind,
		Metadata: spoMetadata{
			Name:        name,
			Namespace:   p.Name.Namespace,
			Annotations: map[string]string{AnnotationRecordedFrom: p.Name.String()},
		},
		Spec: spoSpec{
			DefaultAction: string(specs.ActErrno),
			Syscalls:      []spoSyscall{{Action: string(specs.ActAllow), Names: p.allowed()}},
		},
	}
	for _, a := range abis {
		obj.Spec.Architectures = append(obj.Spec.Architectures, string(a))
	}
	if len(p.Images) > 0 {
		imgs := make([]string, len(p.Images))
		for i, img := range p.Images {
			imgs[i] = img.String()
		}
		obj.Metadata.Annotations[AnnotationImages] = strings.Join(imgs, ",")
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxSubdomain is the longest Kubernetes object name (a DNS-1123
// subdomain).
const maxSubdomain = 253

// spoName is <workload>-<container>, which must be a DNS-1123 subdomain.
// Too long a name is cut and given a hash of the whole, so that two long
// names sharing a prefix still get different objects.
func spoName(n Name) (string, error) {
	name := n.Workload + "-" + n.Container
	if len(name) > maxSubdomain {
		sum := sha256.Sum256([]byte(name))
		suffix := "-" + hex.EncodeToString(sum[:])[:10]
		name = strings.TrimRight(name[:maxSubdomain-len(suffix)], ".-") + suffix
	}
	if !isDNSSubdomain(name) {
		return "", fmt.Errorf("recorded profile %s: %q is not a valid Kubernetes object name (DNS-1123 subdomain: dot-separated labels of a-z, 0-9 and '-', each starting and ending alphanumeric): %w", n, name, errdefs.ErrInvalidArgument)
	}
	return name, nil
}

func isDNSSubdomain(s string) bool {
	if s == "" || len(s) > maxSubdomain {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}
