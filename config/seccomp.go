package config

import (
	"fmt"
	"runtime"
	"slices"
)

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
	// CompatABIs turns on compat syscall ABIs in every container's filter:
	// "x86" (int $0x80, 32-bit programs) and "x32" on amd64, "arm" (32-bit
	// ARM programs) on arm64. Empty, the default, covers the native ABI
	// only: a call through another ABI kills the calling thread with
	// SIGSYS. Each ABI turned on adds libseccomp compile time to every
	// container start (x86 the most: about 100 ms with x86 and x32).
	CompatABIs []string `toml:"compat_abis"`
	// AllowCompatABIAnnotation lets pods choose their compat ABIs with
	// stockade.dev/seccomp-compat-abis (which replaces compat_abis for the
	// pod). Off by default.
	AllowCompatABIAnnotation bool `toml:"allow_compat_abi_annotation"`
}

// CompatABINames returns the compat ABI names valid on goarch.
func CompatABINames(goarch string) []string {
	switch goarch {
	case "amd64":
		return []string{"x86", "x32"}
	case "arm64":
		return []string{"arm"}
	}
	return nil
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
	valid := CompatABINames(runtime.GOARCH)
	for i, a := range s.CompatABIs {
		// Checked against this node's architecture: an ABI the node
		// cannot run would fail every container later instead.
		if !slices.Contains(valid, a) {
			return fmt.Errorf("key seccomp.compat_abis[%d]: %q is not a compat ABI on %s (want one of %q)", i, a, runtime.GOARCH, valid)
		}
		if slices.Index(s.CompatABIs, a) != i {
			return fmt.Errorf("key seccomp.compat_abis[%d]: %q is named twice", i, a)
		}
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
