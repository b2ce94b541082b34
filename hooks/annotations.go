package hooks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
)

// AnnotationPrefix marks the annotations a pod may use to talk to stockade.
// containerd only passes them through if pod_annotations allows "stockade.dev/*".
const AnnotationPrefix = "stockade.dev/"

// Annotation keys understood by stockade. Any other key under the prefix is
// an error: a typo must not silently leave a pod less isolated than its
// author believes.
const (
	AnnotationSeccompMode    = AnnotationPrefix + "seccomp-mode"
	AnnotationSeccompProfile = AnnotationPrefix + "seccomp-profile"
	// AnnotationWorkload names the workload a recorded profile is stored
	// under, when the one derived from the pod name is not wanted.
	AnnotationWorkload = AnnotationPrefix + "workload"
	// AnnotationSeccompCompatABIs names the compat syscall ABIs the pod's
	// filter covers ("x86,x32", "arm", or "none"), where
	// seccomp.allow_compat_abi_annotation permits it.
	AnnotationSeccompCompatABIs = AnnotationPrefix + "seccomp-compat-abis"
)

// compatABINames are every compat ABI name on any supported arch; whether
// one exists on the node's arch is checked where the profile is built.
var compatABINames = []string{"x86", "x32", "arm"}

// SeccompModeRecord is the stockade.dev/seccomp-mode value asking for
// record mode.
const SeccompModeRecord = "record"

// maxAnnotationValue bounds untrusted input.
const maxAnnotationValue = 253

// Annotations are the parsed stockade.dev/* annotations of one container.
// They are untrusted pod input: whether each may take effect is decided by
// the step that uses it, under node config.
type Annotations struct {
	SeccompMode string
	// SeccompProfile names a recorded profile: "workload/container" in the
	// pod's namespace, or "namespace/workload/container".
	SeccompProfile string
	Workload       string
	// SeccompCompatABIs is the parsed stockade.dev/seccomp-compat-abis
	// (empty for "none"); SeccompCompatABIsSet says the pod set it.
	SeccompCompatABIs    []string
	SeccompCompatABIsSet bool
}

// ParseAnnotations extracts and strictly validates the stockade.dev/* keys.
// The error names the annotation and is of kind InvalidArgument.
func ParseAnnotations(all map[string]string) (Annotations, error) {
	var a Annotations
	for k, v := range all {
		if !strings.HasPrefix(k, AnnotationPrefix) {
			continue
		}
		if len(v) > maxAnnotationValue {
			return Annotations{}, fmt.Errorf("annotation %s: value longer than %d bytes: %w", k, maxAnnotationValue, errdefs.ErrInvalidArgument)
		}
		switch k {
		case AnnotationSeccompMode:
			switch v {
			case "enforce", "complain", SeccompModeRecord:
			default:
				return Annotations{}, fmt.Errorf("annotation %s: unknown mode %q (want enforce, complain or record): %w", k, v, errdefs.ErrInvalidArgument)
			}
			a.SeccompMode = v
		case AnnotationSeccompProfile:
			parts := strings.Split(v, "/")
			if len(parts) < 2 || len(parts) > 3 || slices.ContainsFunc(parts, func(p string) bool { return !validName(p) }) {
				return Annotations{}, fmt.Errorf("annotation %s: invalid profile name %q (want workload/container or namespace/workload/container): %w", k, v, errdefs.ErrInvalidArgument)
			}
			a.SeccompProfile = v
		case AnnotationWorkload:
			if !validName(v) {
				return Annotations{}, fmt.Errorf("annotation %s: invalid workload name %q: %w", k, v, errdefs.ErrInvalidArgument)
			}
			a.Workload = v
		case AnnotationSeccompCompatABIs:
			abis, err := parseCompatABIs(v)
			if err != nil {
				return Annotations{}, fmt.Errorf("annotation %s: %w: %w", k, err, errdefs.ErrInvalidArgument)
			}
			a.SeccompCompatABIs, a.SeccompCompatABIsSet = abis, true
		default:
			return Annotations{}, fmt.Errorf("annotation %s: unknown stockade annotation: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return a, nil
}

// validName accepts DNS-1123 subdomain-like names: lowercase
// alphanumerics, '-' and '.', starting and ending alphanumeric. Profile
// names become paths in the store, so "." and ".." must never pass.
func validName(s string) bool {
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if s == "" || !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// parseCompatABIs reads "none" or a comma-separated list of compat ABI
// names, each at most once. Nothing is trimmed or lowercased: a value that
// is not exactly right is refused rather than guessed at.
func parseCompatABIs(v string) ([]string, error) {
	if v == "none" {
		return nil, nil
	}
	var out []string
	for _, n := range strings.Split(v, ",") {
		if !slices.Contains(compatABINames, n) {
			return nil, fmt.Errorf("unknown compat ABI %q in %q (want a comma-separated list of %s, or none)", n, v, strings.Join(compatABINames, ", "))
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("compat ABI %q named twice in %q", n, v)
		}
		out = append(out, n)
	}
	return out, nil
}
