//go:build cgo && seccomp

package seccomp

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// allCaps indexes capabilities by bit for the fuzzer.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

var fuzzActions = []specs.LinuxSeccompAction{
	specs.ActAllow, specs.ActErrno, specs.ActLog, specs.ActKillProcess, specs.ActNotify, specs.ActTrap, "SCMP_ACT_BOGUS",
}

var fuzzOps = []specs.LinuxSeccompOperator{
	specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
	specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpMaskedEqual, "SCMP_CMP_BOGUS",
}

var fuzzValues = []uint64{0, 1, 2, 8, 10, 16, 17, 38, 40, 0x7f, 0x5412, 0x20000, goThreadClone,
	unix.CLONE_NEWUSER, nsFlags, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 1 << 40}

// podFromBytes decodes a pod profile: a header byte (default action, and
// whether runc's syscalls are allowed up front), then rules of an action
// byte, a two-byte name index and up to two arguments of three bytes.
func podFromBytes(b []byte) *specs.LinuxSeccomp {
	if len(b) == 0 {
		return nil
	}
	names := sortedKnown(familyX86 | familyARM)
	p := &specs.LinuxSeccomp{DefaultAction: fuzzActions[int(b[0]&0x7f)%len(fuzzActions)]}
	if b[0]&0x80 == 0 {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: append([]string{"clone"}, runcCritical...), Action: specs.ActAllow})
	}
	b = b[1:]
	for len(b) >= 4 && len(p.Syscalls) < 32 {
		r := specs.LinuxSyscall{
			Action: fuzzActions[int(b[0])%len(fuzzActions)],
			Names:  []string{names[(int(b[1])<<8|int(b[2]))%len(names)]},
		}
		nargs := int(b[3]) % 3
		b = b[4:]
		for ; nargs > 0 && len(b) >= 3; nargs-- {
			r.Args = append(r.Args, specs.LinuxSeccompArg{
				Index:    uint(b[0] % 7),
				Op:       fuzzOps[int(b[1])%len(fuzzOps)],
				Value:    fuzzValues[int(b[2])%len(fuzzValues)],
				ValueTwo: fuzzValues[int(b[2]>>4)%len(fuzzValues)] & 0xffffffff,
			})
			b = b[3:]
		}
		p.Syscalls = append(p.Syscalls, r)
	}
	return p
}

// fuzzRule is a pod rule for podSeed; args are {index, op, value} indexes
// into fuzzOps and fuzzValues.
type fuzzRule struct {
	action specs.LinuxSeccompAction
	name   string
	args   [][3]int
}

// podSeed encodes a pod profile the way podFromBytes decodes it.
func podSeed(def specs.LinuxSeccompAction, critical bool, rules ...fuzzRule) []byte {
	b := []byte{byte(slices.Index(fuzzActions, def))}
	if !critical {
		b[0] |= 0x80
	}
	names := sortedKnown(familyX86 | familyARM)
	for _, r := range rules {
		n := slices.Index(names, r.name)
		b = append(b, byte(slices.Index(fuzzActions, r.action)), byte(n>>8), byte(n), byte(len(r.args)))
		for _, a := range r.args {
			b = append(b, byte(a[0]), byte(a[1]), byte(a[2]))
		}
	}
	return b
}

// FuzzGenerate: for any capabilities, mode, arch and pod profile, Generate
// either refuses with a typed error or returns a profile that libseccomp
// compiles within the kernel's size limit, that keeps the rule shape, never
// allows (or merely logs) a hard-denied call in enforce mode and always
// logs one in complain mode (an explicit rule for every argument value,
// checked by checkShape, and on the BPF), always allows what runc's init
// needs, never allows more than the baseline, and whose BPF agrees with
// Evaluate.
func FuzzGenerate(f *testing.F) {
	defaultBits := uint64(0)
	for i, c := range allCaps {
		if slices.Contains(defaultCaps, c) {
			defaultBits |= 1 << i
		}
	}
	f.Add(uint64(0), false, false, []byte(nil))
	f.Add(defaultBits, true, false, []byte(nil))
	f.Add(defaultBits|1<<21, false, true, []byte(nil))
	// Allow-list pod: socket(AF_INET or AF_INET6), mkdirat(mode < 0x7f).
	f.Add(defaultBits, false, false, podSeed(specs.ActErrno, true,
		fuzzRule{specs.ActAllow, "socket", [][3]int{{0, 0, 2}}},
		fuzzRule{specs.ActAllow, "socket", [][3]int{{0, 0, 4}}},
		fuzzRule{specs.ActAllow, "mkdirat", [][3]int{{2, 2, 9}}}))
	// Deny-list pod: default LOG; chmod denied, ioctl(TIOCSTI) killed.
	f.Add(defaultBits|1<<13, true, false, podSeed(specs.ActLog, false,
		fuzzRule{specs.ActErrno, "chmod", nil},
		fuzzRule{specs.ActKillProcess, "ioctl", [][3]int{{1, 0, 10}}}))
	// Conditions on two arguments, and one argument compared twice.
	f.Add(defaultBits, false, true, podSeed(specs.ActErrno, true,
		fuzzRule{specs.ActAllow, "mmap", [][3]int{{2, 6, 3}, {3, 1, 0}}},
		fuzzRule{specs.ActAllow, "personality", [][3]int{{0, 0, 0}, {0, 0, 18}}}))
	// A pod that denies runc's needs, and one with a 64-bit value.
	f.Add(uint64(0), false, true, podSeed(specs.ActLog, false, fuzzRule{specs.ActErrno, "futex", nil}))
	f.Add(uint64(0), false, false, podSeed(specs.ActAllow, false, fuzzRule{specs.ActErrno, "mkdir", [][3]int{{0, 0, 19}}}))
	f.Fuzz(func(t *testing.T, capBits uint64, complain, arm bool, podBytes []byte) {
		var caps []string
		for i, c := range allCaps {
			if capBits&(1<<i) != 0 {
				caps = append(caps, c)
			}
		}
		goarch, mode := "amd64", ModeEnforce
		if arm {
			goarch = "arm64"
		}
		if complain {
			mode = ModeComplain
		}
		spec := specWith(caps)
		// Every compat ABI on: the 32-bit ABIs are where libseccomp folds
		// and rewrites rules, so that is where a profile can break.
		compat := CompatABINames(goarch)
		prof, err := Generate(spec, Policy{Arch: goarch, Mode: mode, Pod: podFromBytes(podBytes), CompatABIs: compat})
		if err != nil {
			if !errors.Is(err, ErrInvalidProfile) {
				t.Fatalf("Generate failed without ErrInvalidProfile: %v", err)
			}
			return
		}
		checkShape(t, prof, goarch, mode)
		base := mustGenerate(t, spec, Policy{Arch: goarch, Mode: mode, CompatABIs: compat})
		abis := families[goarch]
		vm := compileVM(t, prof, abis[0].name)
		for _, a := range abis {
			for nr, name := range syscallsOf(a) {
				for _, args := range argVectors(name) {
					got := vm.run(a, nr, args)
					if e := expected(prof, a, name, args); got != e {
						t.Fatalf("%s %s(%#x): BPF %#x, Evaluate %#x", a.name, name, args[0], got, e)
					}
					if got == retAllow && expected(base, a, name, args) != retAllow {
						t.Fatalf("%s %s(%#x): allowed, but the baseline denies it", a.name, name, args[0])
					}
					hard := slices.Contains(hardDenied, name) ||
						(name == "socket" && (uint32(args[0]) == unix.AF_ALG || uint32(args[0]) == unix.AF_VSOCK) && (a.bits32 || args[0] <= 0xffffffff))
					switch {
					case name == "clone3":
						// Not a denial: ENOSYS in both modes.
						if got != retENOSYS {
							t.Fatalf("%s clone3: %#x, want ENOSYS", a.name, got)
						}
					case hard && mode == ModeEnforce && got != retEPERM:
						t.Fatalf("%s %s(%#x): hard-denied call returns %#x, want EPERM", a.name, name, args[0], got)
					case hard && mode == ModeComplain && got != retLog && got != retEPERM:
						t.Fatalf("%s %s(%#x): hard-denied call returns %#x in complain mode, want it logged", a.name, name, args[0], got)
					}
					if slices.Contains(runcCritical, name) && got != retAllow {
						t.Fatalf("%s %s: runc's init needs it, got %#x", a.name, name, got)
					}
				}
				if name == "clone" && vm.run(a, nr, [6]uint64{goThreadClone}) != retAllow {
					t.Fatalf("%s clone with Go's thread flags denied", a.name)
				}
			}
		}
	})
}
