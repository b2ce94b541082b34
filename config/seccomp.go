package config

import "fmt"

// Seccomp is the [seccomp] section. Owned by the seccomp feature.
type Seccomp struct {
	// Mode is the node default: "enforce" (deny and log) or "complain" (allow and log).
	Mode string `toml:"mode"`
	// AllowModeAnnotation lets pods choose their mode with stockade.dev/seccomp-mode.
	AllowModeAnnotation bool `toml:"allow_mode_annotation"`
	// UnconfinedNamespaces lists Kubernetes namespaces whose pods may run
	// without seccomp when they ask for Unconfined.
	UnconfinedNamespaces []string `toml:"unconfined_namespaces"`
}

func defaultSeccomp() Seccomp {
	return Seccomp{Mode: "enforce"}
}

func (s *Seccomp) validate() error {
	switch s.Mode {
	case "enforce", "complain":
	default:
		return fmt.Errorf("key seccomp.mode: unknown mode %q (want enforce or complain)", s.Mode)
	}
	return nil
}
