package hooks

import (
	"fmt"
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
)

// maxAnnotationValue bounds untrusted input.
const maxAnnotationValue = 253

// Annotations are the parsed stockade.dev/* annotations of one container.
// They are untrusted pod input: whether each may take effect is decided by
// the step that uses it, under node config.
type Annotations struct {
	SeccompMode    string
	SeccompProfile string
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
			case "enforce", "complain":
			default:
				return Annotations{}, fmt.Errorf("annotation %s: unknown mode %q (want enforce or complain): %w", k, v, errdefs.ErrInvalidArgument)
			}
			a.SeccompMode = v
		case AnnotationSeccompProfile:
			if !validName(v) {
				return Annotations{}, fmt.Errorf("annotation %s: invalid profile name %q: %w", k, v, errdefs.ErrInvalidArgument)
			}
			a.SeccompProfile = v
		default:
			return Annotations{}, fmt.Errorf("annotation %s: unknown stockade annotation: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	return a, nil
}

// validName accepts DNS-label-like names: lowercase alphanumerics, '-', '.', '_'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		default:
			return false
		}
	}
	return true
}
