//go:build cgo && seccomp

package seccomp

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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

// TestAbsentNativeMatchesLibseccomp: absentX86_64 and absentAArch64 list
// exactly the known names libseccomp places on no syscall of the 64-bit ABI
// (a pseudo number). Names this libseccomp does not know at all stay out of
// the lists: a newer libseccomp may give them a real number.
func TestAbsentNativeMatchesLibseccomp(t *testing.T) {
	for _, c := range []struct {
		goarch string
		native libseccomp.ScmpArch
	}{{"amd64", libseccomp.ArchAMD64}, {"arm64", libseccomp.ArchARM64}} {
		fam := familyOf(c.goarch)
		absent := absentNative()[fam]
		for _, n := range sortedKnown(fam) {
			nr, err := libseccomp.GetSyscallFromNameByArch(n, c.native)
			switch {
			case err == nil && nr < 0 && !absent[n]:
				t.Errorf("%s does not exist on %s (pseudo number %d); add it to the %s list of known.go", n, c.native, nr, c.goarch)
			case (err != nil || nr >= 0) && absent[n]:
				t.Errorf("known.go lists %s as absent from %s, but libseccomp gives %d, %v", n, c.native, nr, err)
			}
		}
		for n := range absent {
			if knownSyscalls()[n]&fam == 0 {
				t.Errorf("known.go lists %s as absent from %s, but not as known on %s", n, c.native, c.goarch)
			}
		}
	}
}

// TestPruningKeepsTheProgram: leaving the names absent from the 64-bit ABI
// out of its filter changes nothing that runs: libseccomp compiles the
// pruned and the full profile to the same BPF program, instruction for
// instruction, for every spec shape and mode the golden files pin.
func TestPruningKeepsTheProgram(t *testing.T) {
	cases := []struct {
		goarch string
		native specs.Arch
		caps   []string
		mode   Mode
	}{
		{"amd64", specs.ArchX86_64, defaultCaps, ModeEnforce},
		{"amd64", specs.ArchX86_64, defaultCaps, ModeComplain},
		{"amd64", specs.ArchX86_64, nil, ModeEnforce},
		{"amd64", specs.ArchX86_64, append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_NET_ADMIN"), ModeEnforce},
		{"arm64", specs.ArchAARCH64, defaultCaps, ModeEnforce},
	}
	for _, c := range cases {
		pol := Policy{Arch: c.goarch, Mode: c.mode}
		pruned := mustGenerate(t, specWith(c.caps), pol)
		keepAbsentNames = true
		full := mustGenerate(t, specWith(c.caps), pol)
		keepAbsentNames = false
		if nameCount(pruned) >= nameCount(full) {
			t.Fatalf("%s %s: pruned profile names %d syscalls, the full one %d", c.goarch, c.mode, nameCount(pruned), nameCount(full))
		}
		a, err := Compile(pruned, c.native)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Compile(full, c.native)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a, b) {
			t.Errorf("%s %s caps %v: pruning changed the program (%d against %d instructions)", c.goarch, c.mode, c.caps, len(a), len(b))
		}
	}
}

func nameCount(p *specs.LinuxSeccomp) int {
	n := 0
	for _, r := range p.Syscalls {
		n += len(r.Names)
	}
	return n
}
