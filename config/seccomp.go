package config

import "fmt"

// Seccomp is the [seccomp] section. Owned by the seccomp feature.
type Seccomp struct {
	// Mode is the node default: "enforce" (deny and log) or "complain"
	// (allow and log every denial).
	Mode string `toml:"mode"`
	// AllowModeAnnotation lets pods choose their mode with
	// stockade.dev/seccomp-mode. Off by default, and to be turned on only
	// where every pod is trusted: a pod in complain mode may use everything
	// the profile denies (io_uring, userfaultfd, keyctl, AF_ALG, namespace
	// creation, ...); the calls are logged, but io_uring's work, once set
	// up, no longer passes through seccomp at all.
	AllowModeAnnotation bool `toml:"allow_mode_annotation"`
	// UnconfinedNamespaces lists Kubernetes namespaces whose pods may run
	// without seccomp when they ask for Unconfined. Pods elsewhere that ask
	// for Unconfined get the generated profile.
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
	for i, ns := range s.UnconfinedNamespaces {
		// A typo would silently leave the intended namespace confined, or
		// (worse, with a pattern-like value) suggest an exemption that does
		// not exist; only exact Kubernetes namespace names are accepted.
		if !validNamespace(ns) {
			return fmt.Errorf("key seccomp.unconfined_namespaces[%d]: %q is not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)", i, ns)
		}
	}
	return nil
}
