//go:build cgo && seccomp

package seccomp

import (
	"strings"
	"testing"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// newerThanLibseccomp are names in known.go that libseccomp 2.6 added; an
// older libseccomp (Debian 12 ships 2.5.4) does not resolve them, and runc
// then skips their rules, leaving them to the default action.
var newerThanLibseccomp = strings.Fields(`getxattrat listmount listxattrat
	lsm_get_self_attr lsm_list_modules lsm_set_self_attr mseal removexattrat
	setxattrat statmount uretprobe riscv_hwprobe`)

// TestKnownCoversLibseccomp: every syscall the installed libseccomp knows
// on a supported ABI is in known.go under the right family, so it gets an
// explicit rule; and every name there that libseccomp knows exists where
// known.go says.
func TestKnownCoversLibseccomp(t *testing.T) {
	seen := map[string]family{}
	for goarch, abis := range families {
		fam := familyOf(goarch)
		for _, a := range abis {
			for nr, name := range syscallsOf(a) {
				seen[name] |= fam
				if knownSyscalls()[name]&fam == 0 {
					t.Errorf("libseccomp knows %s (%d) on %s; add it to known.go", name, nr, a.name)
				}
			}
		}
	}
	for name, fam := range knownSyscalls() {
		// On x86 libseccomp multiplexes socket and IPC calls through
		// socketcall and ipc, under pseudo numbers -101..-120, -201..-224.
		if nr, err := libseccomp.GetSyscallFromNameByArch(name, libseccomp.ArchX86); err == nil && nr < -100 && nr > -300 {
			seen[name] |= familyX86
		}
		if fam == 0 {
			continue
		}
		switch {
		case seen[name] == 0 && !contains(newerThanLibseccomp, name):
			t.Errorf("known.go lists %s, which libseccomp does not know on any supported ABI", name)
		case seen[name] != 0 && seen[name] != fam:
			t.Errorf("known.go puts %s in families %b, libseccomp in %b", name, fam, seen[name])
		}
	}
}

// TestRuncCriticalIsNative: the names runc's init needs exist on both
// native ABIs, so a pod profile recorded on either must allow them.
func TestRuncCriticalIsNative(t *testing.T) {
	for _, name := range runcCritical {
		for _, a := range []libseccomp.ScmpArch{libseccomp.ArchAMD64, libseccomp.ArchARM64} {
			if nr, err := libseccomp.GetSyscallFromNameByArch(name, a); err != nil || nr < 0 {
				t.Errorf("%s does not exist on %s", name, a)
			}
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
