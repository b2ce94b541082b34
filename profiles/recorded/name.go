package recorded

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Name identifies a recorded profile: Kubernetes namespace, workload (pod
// owner like a Deployment, or the pod name), container name.
type Name struct{ Namespace, Workload, Container string }

// String returns "namespace/workload/container", the form ParseName reads
// and the stockade.dev/seccomp-profile annotation uses (without the
// namespace, which is the pod's).
func (n Name) String() string {
	return n.Namespace + "/" + n.Workload + "/" + n.Container
}

// ParseName reads "namespace/workload/container".
func ParseName(s string) (Name, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return Name{}, fmt.Errorf("recorded profile name %q: want namespace/workload/container: %w", s, errdefs.ErrInvalidArgument)
	}
	n := Name{Namespace: parts[0], Workload: parts[1], Container: parts[2]}
	if err := n.Validate(); err != nil {
		return Name{}, err
	}
	return n, nil
}

// maxPart is the longest DNS-1123 subdomain; Kubernetes namespaces and
// container names are shorter labels, workloads can be subdomains.
const maxPart = 253

// Validate checks every part. The parts become directory and file names in
// the store, so the check is also what keeps a name from escaping it.
// Errors wrap errdefs.ErrInvalidArgument.
func (n Name) Validate() error {
	if err := n.check(); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (n Name) check() error {
	for _, p := range []struct{ field, v string }{
		{"namespace", n.Namespace}, {"workload", n.Workload}, {"container", n.Container},
	} {
		if err := checkPart(p.v); err != nil {
			return fmt.Errorf("recorded profile name %q: %s %q: %w", n.String(), p.field, p.v, err)
		}
	}
	return nil
}

func checkPart(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > maxPart:
		return fmt.Errorf("longer than %d characters", maxPart)
	case s == "." || s == "..":
		return fmt.Errorf("not a name")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '.' {
			return fmt.Errorf("character %q at %d: only lowercase letters, digits, '-' and '.' are allowed", c, i)
		}
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return fmt.Errorf("must start and end with a lowercase letter or digit")
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
