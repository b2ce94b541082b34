package recorded

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// eperm is what a syscall outside the recording fails with: "not
// permitted" rather than ENOSYS, because the call exists and a program
// that falls back on ENOSYS would hide that the profile is too narrow.
const eperm = 1

// AllowList is the allow-list every export of p shares (OCI here, the
// security-profiles-operator object in profiles/recorded/spo): everything
// recorded on any ABI, and what runc's init needs after it loads the
// filter, which the recorder never sees because it starts with the
// container's process. The names are sorted and unique, and the slice is
// new on every call.
func (p *Profile) AllowList() []string {
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
			{Names: p.AllowList(), Action: specs.ActAllow},
		},
	}
}
