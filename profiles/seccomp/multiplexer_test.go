//go:build cgo && seccomp

package seccomp

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestPodMultiplexerConditions: a pod that allows socketcall or ipc only
// for some arguments gets them denied whole on amd64, because libseccomp
// would otherwise fold socket's and semop's rules into theirs on 32-bit x86
// and refuse the filter. The profile must compile in both modes (the fuzzer
// found the complain-mode profile failing with "file exists").
func TestPodMultiplexerConditions(t *testing.T) {
	pod := allowList(
		specs.LinuxSyscall{Names: []string{"socketcall", "ipc"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
		specs.LinuxSyscall{Names: []string{"semop"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 1, Op: specs.OpEqualTo}}},
	)
	for _, mode := range []Mode{ModeEnforce, ModeComplain} {
		p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "amd64", Mode: mode, Pod: pod, CompatABIs: []string{"x86"}})
		checkShape(t, p, "amd64", mode)
		want := "eperm"
		if mode == ModeComplain {
			want = "log"
		}
		for _, name := range []string{"socketcall", "ipc"} {
			if got := verdictOf(p, name, [6]uint64{1}); got != want {
				t.Errorf("%s: %s(1) = %s, want %s", mode, name, got, want)
			}
		}
		if got := verdictOf(p, "socket", [6]uint64{unix.AF_INET}); got != "allow" {
			t.Errorf("%s: socket(AF_INET) = %s, want allow", mode, got)
		}
		// On the BPF libseccomp builds, for the 32-bit ABI too.
		vm := compileVM(t, p, specs.ArchX86_64)
		for nr, name := range map[int]string{102: "socketcall", 117: "ipc"} {
			if got, want := vm.run(abiX86, nr, [6]uint64{1}), expected(p, abiX86, name, [6]uint64{1}); got != want {
				t.Errorf("%s: x86 %s(1) BPF %#x, want %#x", mode, name, got, want)
			}
		}
	}
	// arm has no multiplexers: the pod's conditions stay.
	p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "arm64", Pod: pod, CompatABIs: []string{"arm"}})
	if got := verdictOf(p, "semop", [6]uint64{0, 0, 1}); got != "allow" {
		t.Errorf("arm64 semop(.., 1) = %s, want allow", got)
	}
}

// muxNumbers are the i386 syscall numbers of the multiplexers.
var muxNumbers = map[string]int{"socketcall": 102, "ipc": 117}

// TestMultiplexerNoBypass is the regression test for the 32-bit socketcall
// bypass: int $0x80 socketcall(SYS_SOCKET, {AF_VSOCK, ...}) was allowed
// while socket(AF_VSOCK) was denied. On the compiled BPF, for every
// multiplexer and profile: if any call it carries is denied for some
// arguments (on the native ABI, as Evaluate reads the profile), every call
// number through the multiplexer is denied on 32-bit x86 with an explicit
// deny (EPERM enforcing, LOG complaining), never the default's ENOSYS, so
// denial streaming sees it; if every carried call is allowed, the
// multiplexer is too, so a 32-bit libc that multiplexes keeps working.
func TestMultiplexerNoBypass(t *testing.T) {
	// A pod allowing every known x86 name but shmget.
	denyShmget := allowList(specs.LinuxSyscall{Names: slices.DeleteFunc(sortedKnown(familyX86), func(n string) bool { return n == "shmget" }), Action: specs.ActAllow})
	// The multiplexers only exist on 32-bit x86, which is off by default.
	x86 := Policy{Arch: "amd64", CompatABIs: []string{"x86"}}
	cases := []struct {
		name string
		spec *specs.Spec
		pol  Policy
		// want the multiplexers allowed (true) or denied (false)
		socketcall, ipc bool
	}{
		{"default", specWith(defaultCaps), x86, false, true},
		{"net-admin", specWith(append(slices.Clone(defaultCaps), "CAP_NET_ADMIN", "CAP_SYS_ADMIN")), x86, false, true},
		{"complain", specWith(defaultCaps), Policy{Arch: "amd64", Mode: ModeComplain, CompatABIs: []string{"x86"}}, false, true},
		{"pod-denies-shmget", specWith(defaultCaps), Policy{Arch: "amd64", Pod: denyShmget, CompatABIs: []string{"x86"}}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := mustGenerate(t, c.spec, c.pol)
			vm := compileVM(t, p, specs.ArchX86_64)
			deny := uint32(retEPERM)
			if c.pol.Mode == ModeComplain {
				deny = retLog
			}
			for mux, wantAllowed := range map[string]bool{"socketcall": c.socketcall, "ipc": c.ipc} {
				// The premise, from the native ABI: is any carried call
				// denied for some arguments?
				carriedDenied := ""
				for _, n := range multiplexers[mux] {
					for _, args := range argVectors(n) {
						if act, _ := Evaluate(p, n, args); act != specs.ActAllow {
							carriedDenied = n
						}
					}
				}
				if (carriedDenied == "") != wantAllowed {
					t.Fatalf("%s: carried call denied = %q, test case expects allowed=%v", mux, carriedDenied, wantAllowed)
				}
				want := uint32(retAllow)
				if !wantAllowed {
					want = deny
				}
				for call := uint64(0); call <= 32; call++ {
					for _, args := range [][6]uint64{{call}, {call, 0x1000}, {call, 0xffffffff, 1, 2, 3, 4}} {
						if got := vm.run(abiX86, muxNumbers[mux], args); got != want {
							t.Errorf("x86 %s(%d, %#x) = %#x, want %#x (carried call denied: %q)", mux, call, args[1], got, want, carriedDenied)
						}
					}
				}
				if !wantAllowed && !slices.ContainsFunc(p.Syscalls, func(r specs.LinuxSyscall) bool {
					return IsExplicitDeny(r) && len(r.Args) == 0 && slices.Contains(r.Names, mux)
				}) {
					t.Errorf("%s is not named by an unconditional explicit deny rule, so denial streaming would not see it", mux)
				}
			}
			// The direct 32-bit socket call (359 on i386) keeps the
			// family checks of the native one.
			for _, fam := range []uint64{unix.AF_ALG, unix.AF_VSOCK} {
				if got := vm.run(abiX86, 359, [6]uint64{fam, unix.SOCK_STREAM}); got != deny {
					t.Errorf("x86 socket(%d) = %#x, want %#x", fam, got, deny)
				}
			}
			if got := vm.run(abiX86, 359, [6]uint64{unix.AF_INET, unix.SOCK_STREAM}); got != retAllow {
				t.Errorf("x86 socket(AF_INET) = %#x, want allow", got)
			}
		})
	}
}

// TestMultiplexedNamesKnown: every call a multiplexer carries is a name the
// profile reviews on x86, or denyMultiplexers could not see its verdict.
func TestMultiplexedNamesKnown(t *testing.T) {
	for mux, carried := range multiplexers {
		for _, n := range append([]string{mux}, carried...) {
			if knownSyscalls()[n]&familyX86 == 0 {
				t.Errorf("%s: %s is not known on x86", mux, n)
			}
		}
	}
}
