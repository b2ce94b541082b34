//go:build cgo && seccomp

package seccomp

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	cdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// armOnlyInRuntimeDefault are the names containerd's DefaultProfile adds
// only when containerd itself runs on arm (a runtime.GOARCH switch). The
// reference profile is generated on this host, so it lacks them.
var armOnlyInRuntimeDefault = []string{"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"}

// argVectors returns argument vectors that reach each argument-conditioned
// rule of either profile, plus generic edge values.
func argVectors(name string) [][6]uint64 {
	vs := [][6]uint64{{}, {0xffffffff}, {1 << 32}, {0xffffffffffffffff}, {1, 2, 3, 4, 5, 6}}
	switch name {
	case "clone":
		vs = append(vs, [6]uint64{goThreadClone}, [6]uint64{uint64(unix.SIGCHLD)}, [6]uint64{1<<32 | goThreadClone})
		for f := uint64(1); f < 1<<32; f <<= 1 {
			vs = append(vs, [6]uint64{f}, [6]uint64{f | uint64(unix.SIGCHLD)})
		}
	case "socket":
		for fam := uint64(0); fam <= 64; fam++ {
			vs = append(vs, [6]uint64{fam, unix.SOCK_STREAM})
		}
		vs = append(vs, [6]uint64{0x7fffffff}, [6]uint64{1<<32 | unix.AF_INET}, [6]uint64{1<<32 | unix.AF_ALG},
			[6]uint64{unix.AF_ALG, ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)},
			[6]uint64{unix.AF_VSOCK, 1 << 40, 0xffffffff, 1, 2, 3})
	case "personality":
		vs = append(vs, [6]uint64{perLinux32}, [6]uint64{uname26}, [6]uint64{perLinux32 | uname26}, [6]uint64{0xfffffffe}, [6]uint64{1<<32 | 8})
		for b := uint64(1); b < 1<<32; b <<= 1 {
			vs = append(vs, [6]uint64{b}, [6]uint64{b | 8})
		}
	}
	return vs
}

// TestNeverLooserThanRuntimeDefault is the key property: for every syscall
// libseccomp knows on every ABI a profile covers, for no capabilities,
// containerd's default set and that set plus CAP_SYS_ADMIN, the compiled
// stockade filter (enforce mode) never allows a call the compiled
// RuntimeDefault filter denies. It also checks the rule shape on the real
// BPF: known syscalls are allowed or get EPERM from an explicit rule, clone3
// and unknown numbers get ENOSYS, and libseccomp's compilation agrees with
// Evaluate. The complain-mode filter allows without logging exactly what
// enforce mode allows, logs every other known call (hard denials included)
// and returns ENOSYS for clone3 and unknown numbers, like enforce mode.
//
// It runs for every combination of compat ABIs a node can turn on. Calls
// through an ABI the profile does not cover must get libseccomp's default
// bad-architecture action (KILL_THREAD), which runc v1.5.2 never changes,
// in both modes: that is stricter than anything RuntimeDefault does.
func TestNeverLooserThanRuntimeDefault(t *testing.T) {
	compatSets := map[string][][]string{
		"amd64": {nil, {"x86"}, {"x32"}, {"x86", "x32"}},
		"arm64": {nil, {"arm"}},
	}
	for _, goarch := range []string{"amd64", "arm64"} {
		abis := families[goarch]
		for _, compat := range compatSets[goarch] {
			for capName, caps := range capSets {
				t.Run(goarch+"/compat="+strings.Join(compat, "+")+"/"+capName, func(t *testing.T) {
					checkAgainstRuntimeDefault(t, goarch, abis, compat, specWith(caps))
				})
			}
		}
	}
}

func checkAgainstRuntimeDefault(t *testing.T, goarch string, abis []abi, compat []string, spec *specs.Spec) {
	ours := mustGenerate(t, spec, Policy{Arch: goarch, CompatABIs: compat})
	complain := mustGenerate(t, spec, Policy{Arch: goarch, Mode: ModeComplain, CompatABIs: compat})
	ref := cdseccomp.DefaultProfile(spec)
	ref.Architectures = nil // the native ABI below, plus ours
	for _, a := range abis[1:] {
		ref.Architectures = append(ref.Architectures, a.name)
	}
	native := abis[0].name
	oursF, complainF, refF := compileVM(t, ours, native), compileVM(t, complain, native), compileVM(t, ref, native)
	checked := 0
	for _, a := range abis {
		if !slices.Contains(ours.Architectures, a.name) {
			// Not covered: every call, known or not, gets the
			// bad-architecture action.
			for nr := range syscallsOf(a) {
				for _, f := range []filter{oursF, complainF} {
					if got := f.run(a, nr, [6]uint64{}); got != retKillThread {
						t.Fatalf("%s (not covered) syscall %d = %#x, want KILL_THREAD", a.name, nr, got)
					}
				}
				checked++
			}
			continue
		}
		known := syscallsOf(a)
		for nr, name := range known {
			for _, args := range argVectors(name) {
				o, c, r := oursF.run(a, nr, args), complainF.run(a, nr, args), refF.run(a, nr, args)
				checked++
				if o == retAllow && r != retAllow && !(a.name == specs.ArchARM && slices.Contains(armOnlyInRuntimeDefault, name)) {
					t.Errorf("%s %s(%#x): stockade allows, RuntimeDefault returns %#x", a.name, name, args[0], r)
				}
				want := uint32(retEPERM)
				if name == "clone3" {
					want = retENOSYS
				}
				if o != retAllow && o != want {
					t.Errorf("%s %s(%#x) = %#x, want allow or %#x from an explicit rule", a.name, name, args[0], o, want)
				}
				if e := expected(ours, a, name, args); o != e {
					t.Errorf("%s %s(%#x): BPF %#x, Evaluate %#x", a.name, name, args[0], o, e)
				}
				if e := expected(complain, a, name, args); c != e || (o == retAllow) != (c == retAllow) {
					t.Errorf("%s %s(%#x): complain BPF %#x, Evaluate %#x, enforce %#x", a.name, name, args[0], c, e, o)
				}
				// What enforce mode denies, complain mode logs
				// (clone3's ENOSYS is not a denial).
				if wantC := map[uint32]uint32{retAllow: retAllow, retEPERM: retLog, retENOSYS: retENOSYS}[o]; c != wantC {
					t.Errorf("%s %s(%#x): complain %#x, enforce %#x", a.name, name, args[0], c, o)
				}
			}
		}
		// Numbers libseccomp has no name for (syscalls newer than
		// its table, gaps) fall to the default action.
		for _, r := range a.ranges {
			for nr := r[0]; nr < r[1]; nr++ {
				if _, ok := known[nr]; ok {
					continue
				}
				if got := oursF.run(a, nr, [6]uint64{}); got != retENOSYS {
					t.Errorf("%s unknown syscall %d = %#x, want ENOSYS", a.name, nr, got)
				}
				if got := complainF.run(a, nr, [6]uint64{}); got != retENOSYS {
					t.Errorf("%s unknown syscall %d = %#x in complain mode, want ENOSYS", a.name, nr, got)
				}
			}
		}
	}
	t.Logf("%d calls checked", checked)
}

// TestRuntimeDefaultAsPodProfile: a pod asking for RuntimeDefault (which
// containerd's CRI turns into this very profile) gets the baseline back.
func TestRuntimeDefaultAsPodProfile(t *testing.T) {
	for capName, caps := range capSets {
		spec := specWith(caps)
		want := mustGenerate(t, spec, Policy{Arch: "amd64"})
		got := mustGenerate(t, spec, Policy{Arch: "amd64", Pod: cdseccomp.DefaultProfile(spec)})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: intersecting with RuntimeDefault changed the baseline", capName)
		}
	}
}
