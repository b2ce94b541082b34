// Package spo exports recorded seccomp profiles as security-profiles-
// operator (SPO) SeccompProfile objects, for clusters that distribute
// profiles with SPO. It is the only part of the recorded profiles that
// needs YAML, and lives apart from package recorded so that the shim,
// which imports recorded for recording and enforcing, does not link a YAML
// encoder into every pod's process.
package spo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.yaml.in/yaml/v3"

	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// SPO stores its profiles as this custom resource
// (api/seccompprofile/v1beta1 in its repository). Only the fields an
// allow-list needs are written.
const (
	apiVersion = "security-profiles-operator.x-k8s.io/v1beta1"
	kind       = "SeccompProfile"

	// AnnotationRecordedFrom and AnnotationImages are set on exported
	// SeccompProfile objects, so the cluster side can tell where a profile
	// came from.
	AnnotationRecordedFrom = "stockade.dev/recorded-from"
	AnnotationImages       = "stockade.dev/images"
)

type object struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`
	Spec       spec     `yaml:"spec"`
}

type metadata struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Annotations map[string]string `yaml:"annotations"`
}

type spec struct {
	DefaultAction string    `yaml:"defaultAction"`
	Architectures []string  `yaml:"architectures"`
	Syscalls      []syscall `yaml:"syscalls"`
}

type syscall struct {
	Action string   `yaml:"action"`
	Names  []string `yaml:"names"`
}

// Manifest returns p for goarch as an SPO SeccompProfile object (YAML),
// named <workload>-<container> in p's namespace, with the allow-list of
// p.OCI (p.AllowList). SPO's SeccompProfile has no default errno, and an
// SCMP_ACT_ERRNO default without one fails calls with EPERM, as the OCI
// export's does. The images annotation is left out when no recording knew
// its image. Errors wrap errdefs.ErrInvalidArgument for an unsupported
// goarch or a name that is no Kubernetes object name.
func Manifest(p *recorded.Profile, goarch string) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("SPO manifest: nil profile: %w", errdefs.ErrInvalidArgument)
	}
	abis, err := seccomp.ABIs(goarch)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	name, err := objectName(p.Name)
	if err != nil {
		return nil, err
	}
	obj := object{
		APIVersion: apiVersion,
		Kind:       kind,
		Metadata: metadata{
			Name:        name,
			Namespace:   p.Name.Namespace,
			Annotations: map[string]string{AnnotationRecordedFrom: p.Name.String()},
		},
		Spec: spec{
			DefaultAction: string(specs.ActErrno),
			Syscalls:      []syscall{{Action: string(specs.ActAllow), Names: p.AllowList()}},
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

// objectName is <workload>-<container>, which must be a DNS-1123
// subdomain. Too long a name is cut and given a hash of the whole, so that
// two long names sharing a prefix still get different objects.
func objectName(n recorded.Name) (string, error) {
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

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
