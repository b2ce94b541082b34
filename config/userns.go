package config

import (
	"fmt"
	"path/filepath"

	"github.com/stockade-dev/stockade/profiles/userns"
)

// Host-namespace pod policies (userns.host_namespace_pods).
const (
	// HostNamespacePodsRefuse fails the creation of a pod that cannot run in
	// a user namespace (privileged, host network/PID/IPC) unless its
	// Kubernetes namespace is listed in userns.exempt_namespaces.
	HostNamespacePodsRefuse = "refuse"
	// HostNamespacePodsExempt runs such pods without remapping.
	HostNamespacePodsExempt = "exempt"
)

// UserNS is the [userns] section. Owned by the user-namespace feature.
type UserNS struct {
	// Enabled turns per-pod user-namespace remapping on.
	Enabled bool `toml:"enabled"`
	// Pool is the host ID range pods get their 65536-ID ranges from:
	// "START-END" (inclusive) or "START+SIZE". Empty: the "stockade" entries
	// of /etc/subuid and /etc/subgid when present, else the built-in
	// default 2147483648-2214592511 (1024 pods).
	Pool string `toml:"pool"`
	// RangeSize is the number of host IDs each pod gets: a multiple of
	// 65536 up to 16777216 that the pool holds at least once. Default
	// 65536, the 16-bit ID space images use; inside a pod, IDs at or above
	// the range size are unmapped, so chown to them fails with EINVAL.
	RangeSize uint32 `toml:"range_size"`
	// StateDir holds the range leases shared by all shims of the node.
	// Empty: <state_dir>/userns.
	StateDir string `toml:"state_dir"`
	// HostNamespacePods is "refuse" (default) or "exempt": what happens to
	// privileged pods and pods using the host's network, PID or IPC
	// namespace, none of which can be remapped.
	HostNamespacePods string `toml:"host_namespace_pods"`
	// ExemptNamespaces lists Kubernetes namespaces whose privileged or
	// host-namespace pods run without remapping even when the policy is
	// "refuse" (e.g. kube-system for host-network daemons). Other pods in
	// these namespaces are still remapped.
	ExemptNamespaces []string `toml:"exempt_namespaces"`
}

func defaultUserNS() UserNS {
	return UserNS{Enabled: true, RangeSize: userns.RangeSize, HostNamespacePods: HostNamespacePodsRefuse}
}

func (u *UserNS) validate() error {
	if u.Pool != "" {
		if _, err := userns.ParsePool(u.Pool); err != nil {
			return fmt.Errorf("key userns.pool: %w", err)
		}
	}
	if err := userns.ValidRangeSize(u.RangeSize); err != nil {
		return fmt.Errorf("key userns.range_size: %w", err)
	}
	if u.Pool != "" {
		// A pool from /etc/subuid is only known at the node; one named
		// here is checked now, so the error names the key.
		if p, _ := userns.ParsePool(u.Pool); p.Size < u.PodRangeSize() {
			return fmt.Errorf("key userns.range_size: %d IDs do not fit the pool %s even once", u.PodRangeSize(), u.Pool)
		}
	}
	if u.StateDir != "" && !filepath.IsAbs(u.StateDir) {
		return fmt.Errorf("key userns.state_dir: must be an absolute path, got %q", u.StateDir)
	}
	switch u.HostNamespacePods {
	case HostNamespacePodsRefuse, HostNamespacePodsExempt:
	default:
		return fmt.Errorf("key userns.host_namespace_pods: unknown policy %q (want %s or %s)",
			u.HostNamespacePods, HostNamespacePodsRefuse, HostNamespacePodsExempt)
	}
	for _, ns := range u.ExemptNamespaces {
		if !validNamespace(ns) {
			return fmt.Errorf("key userns.exempt_namespaces: %q is not a Kubernetes namespace name", ns)
		}
	}
	return nil
}

// PodRangeSize is userns.range_size, or 65536 in a Config not built by
// Default or Parse.
func (u *UserNS) PodRangeSize() uint32 {
	if u.RangeSize == 0 {
		return userns.RangeSize
	}
	return u.RangeSize
}

// Exempt reports whether pods of Kubernetes namespace ns that cannot run in
// a user namespace may run without one.
func (u *UserNS) Exempt(ns string) bool {
	if u.HostNamespacePods == HostNamespacePodsExempt {
		return true
	}
	for _, e := range u.ExemptNamespaces {
		if ns != "" && e == ns {
			return true
		}
	}
	return false
}

// UserNSStateDir is where the range leases live: userns.state_dir, or
// <state_dir>/userns.
func (c *Config) UserNSStateDir() string {
	if c.UserNS.StateDir != "" {
		return c.UserNS.StateDir
	}
	return filepath.Join(c.StateDir, "userns")
}

// validNamespace accepts RFC 1123 labels, which Kubernetes namespace names are.
func validNamespace(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
