package seccomp

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// sigchld is the exit signal fork passes in clone's flags.
const sigchld = uint64(unix.SIGCHLD)

// defaultCaps is the capability set containerd gives a container that asks
// for nothing (pkg/oci's default spec), which Kubernetes pods get too.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// capSets are the capability sets the profile tests cover.
var capSets = map[string][]string{
	"nocaps":   nil,
	"default":  defaultCaps,
	"sysadmin": append(slices.Clone(defaultCaps), "CAP_SYS_ADMIN"),
}

func specWith(caps []string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}}}
}

func mustGenerate(t testing.TB, spec *specs.Spec, p Policy) *specs.LinuxSeccomp {
	t.Helper()
	prof, err := Generate(spec, p)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return prof
}

// TestProfileShape checks the structural promises other code relies on.
func TestProfileShape(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		for capName, caps := range capSets {
			for _, mode := range []Mode{ModeEnforce, ModeComplain} {
				t.Run(arch+"/"+capName+"/"+string(mode), func(t *testing.T) {
					checkShape(t, mustGenerate(t, specWith(caps), Policy{Arch: arch, Mode: mode}), arch, mode)
				})
			}
		}
	}
}

func checkShape(t *testing.T, p *specs.LinuxSeccomp, arch string, mode Mode) {
	t.Helper()
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != UnknownErrno {
		t.Errorf("default action %s/%v, want ERRNO/ENOSYS", p.DefaultAction, p.DefaultErrnoRet)
	}
	if !slices.Contains(p.Flags, specs.LinuxSeccompFlagLog) {
		t.Errorf("flags %v lack SECCOMP_FILTER_FLAG_LOG", p.Flags)
	}
	fam := familyOf(arch)
	unconditional := map[string]specs.LinuxSyscall{}
	conditional := map[string]bool{}
	for i, r := range p.Syscalls {
		switch {
		case r.Action == specs.ActAllow, IsExplicitDeny(r):
		case r.Action == specs.ActErrno && *r.ErrnoRet == UnknownErrno && slices.Equal(r.Names, []string{"clone3"}):
		default:
			t.Errorf("syscalls[%d]: unexpected action %s/%v", i, r.Action, r.ErrnoRet)
		}
		// Complain mode allows and logs every denial, hard or policy; enforce
		// mode logs none without failing it.
		if mode == ModeComplain && r.Action == specs.ActErrno && *r.ErrnoRet == DenyErrno {
			t.Errorf("syscalls[%d]: complain mode has an enforced (EPERM) rule for %v", i, r.Names)
		}
		if mode == ModeEnforce && r.Action == specs.ActLog {
			t.Errorf("syscalls[%d]: enforce mode has a LOG rule for %v", i, r.Names)
		}
		seen := map[uint]bool{}
		for _, a := range r.Args {
			if seen[a.Index] {
				t.Errorf("syscalls[%d]: argument %d compared twice (runc would OR them)", i, a.Index)
			}
			seen[a.Index] = true
		}
		for _, n := range r.Names {
			if knownSyscalls()[n]&fam == 0 {
				t.Errorf("syscalls[%d]: %s does not exist on %s", i, n, arch)
			}
			if len(r.Args) > 0 {
				conditional[n] = true
				if r.Action != specs.ActAllow && slices.Contains(runcCritical, n) {
					t.Errorf("syscalls[%d]: runc-critical %s in a deny rule", i, n)
				}
				continue
			}
			if _, dup := unconditional[n]; dup {
				t.Errorf("%s named by two unconditional rules", n)
			}
			unconditional[n] = r
			if r.Action != specs.ActAllow && slices.Contains(runcCritical, n) {
				t.Errorf("runc-critical %s denied", n)
			}
		}
	}
	// A filter of the 64-bit ABI alone leaves out the names that do not
	// exist there (they would compile to nothing); every other known name
	// gets a rule.
	nativeOnly := len(p.Architectures) == 1
	for _, n := range sortedKnown(fam) {
		_, u := unconditional[n]
		if nativeOnly && absentNative()[fam][n] {
			if u || conditional[n] {
				t.Errorf("%s does not exist on %s's 64-bit ABI, the only one covered, but has a rule", n, arch)
			}
			continue
		}
		switch {
		case u && conditional[n]:
			t.Errorf("%s has both unconditional and conditional rules (libseccomp refuses that)", n)
		case !u && !conditional[n]:
			t.Errorf("%s has no explicit rule", n)
		}
	}
	// Hard denials are explicit deny rules for every argument value: EPERM
	// when enforcing, LOG when complaining. Never allowed, never left to
	// the default action, always visible to denial streaming.
	hardAct := func(r specs.LinuxSyscall) bool { return r.Action == specs.ActErrno && *r.ErrnoRet == DenyErrno }
	if mode == ModeComplain {
		hardAct = func(r specs.LinuxSyscall) bool { return r.Action == specs.ActLog }
	}
	for _, n := range hardDenied {
		if knownSyscalls()[n]&fam == 0 || nativeOnly && absentNative()[fam][n] {
			continue
		}
		if err := alwaysDenied(p, n, nil, hardAct); err != nil {
			t.Errorf("%s: hard-denied %s: %v", mode, n, err)
		}
	}
	for _, af := range []uint32{unix.AF_ALG, unix.AF_VSOCK} {
		if err := alwaysDenied(p, "socket", &af, hardAct); err != nil {
			t.Errorf("%s: hard-denied socket(%d): %v", mode, af, err)
		}
	}
}

// alwaysDenied checks, on the rules alone, that every call of name whose
// argument 0 is *arg0 (upper half zero; nil: any argument) with any other
// arguments matches an explicit deny rule with an action want accepts, and
// no rule of another action. Generated rules for one syscall are disjoint,
// so libseccomp's arbitrary ordering cannot let another rule win. It relies
// on checkShape's check that no rule compares an argument twice.
func alwaysDenied(p *specs.LinuxSeccomp, name string, arg0 *uint32, want func(specs.LinuxSyscall) bool) error {
	// onlyArg0Matches reports whether r's conditions are all on argument 0
	// and all hold for *arg0, so r matches whatever the other arguments.
	onlyArg0Matches := func(r specs.LinuxSyscall) bool {
		if arg0 == nil {
			return len(r.Args) == 0
		}
		for _, c := range r.Args {
			if c.Index != 0 || !compare(c, uint64(*arg0)) {
				return false
			}
		}
		return true
	}
	// mayMatch reports whether r matches some call with *arg0: its
	// conditions on argument 0 hold (the others may be satisfiable).
	mayMatch := func(r specs.LinuxSyscall) bool {
		if arg0 == nil {
			return true
		}
		for _, c := range r.Args {
			if c.Index == 0 && !compare(c, uint64(*arg0)) {
				return false
			}
		}
		return true
	}
	covered := false
	for i, r := range p.Syscalls {
		if !slices.Contains(r.Names, name) {
			continue
		}
		if IsExplicitDeny(r) && want(r) {
			covered = covered || onlyArg0Matches(r)
			continue
		}
		if mayMatch(r) {
			return fmt.Errorf("syscalls[%d] (%s) may match it", i, r.Action)
		}
	}
	if !covered {
		return errors.New("no explicit deny rule with the mode's action covers every call")
	}
	return nil
}

// TestVerdicts spot-checks what the profile does with particular calls.
func TestVerdicts(t *testing.T) {
	const allow, eperm, log, enosys = "allow", "eperm", "log", "enosys"
	cases := []struct {
		caps    string
		mode    Mode
		syscall string
		args    [6]uint64
		want    string
	}{
		{"default", ModeEnforce, "read", [6]uint64{}, allow},
		{"default", ModeEnforce, "clone3", [6]uint64{}, enosys},
		{"sysadmin", ModeEnforce, "clone3", [6]uint64{}, enosys},
		{"default", ModeEnforce, "no_such_syscall", [6]uint64{}, enosys},
		{"default", ModeEnforce, "clone", [6]uint64{goThreadClone}, allow},
		{"default", ModeEnforce, "clone", [6]uint64{sigchld}, allow},
		{"default", ModeEnforce, "clone", [6]uint64{unix.CLONE_NEWUSER}, eperm},
		{"default", ModeEnforce, "clone", [6]uint64{1<<32 | sigchld}, eperm},
		{"default", ModeComplain, "clone", [6]uint64{unix.CLONE_NEWNET | sigchld}, log},
		{"sysadmin", ModeEnforce, "clone", [6]uint64{unix.CLONE_NEWUSER}, allow},
		{"default", ModeEnforce, "unshare", [6]uint64{unix.CLONE_NEWUSER}, eperm},
		{"sysadmin", ModeEnforce, "unshare", [6]uint64{unix.CLONE_NEWUSER}, allow},
		{"default", ModeEnforce, "socket", [6]uint64{unix.AF_INET}, allow},
		{"default", ModeEnforce, "socket", [6]uint64{unix.AF_UNIX}, allow},
		{"default", ModeEnforce, "socket", [6]uint64{unix.AF_PACKET}, allow},
		{"nocaps", ModeEnforce, "socket", [6]uint64{unix.AF_PACKET}, eperm},
		{"default", ModeEnforce, "socket", [6]uint64{unix.AF_CAN}, eperm},
		{"default", ModeComplain, "socket", [6]uint64{unix.AF_CAN}, log},
		{"default", ModeEnforce, "socket", [6]uint64{unix.AF_ALG}, eperm},
		{"sysadmin", ModeEnforce, "socket", [6]uint64{unix.AF_ALG}, eperm},
		{"sysadmin", ModeEnforce, "socket", [6]uint64{unix.AF_VSOCK, unix.SOCK_STREAM}, eperm},
		{"default", ModeComplain, "socket", [6]uint64{unix.AF_ALG}, log},
		{"sysadmin", ModeComplain, "socket", [6]uint64{unix.AF_VSOCK}, log},
		{"default", ModeComplain, "socket", [6]uint64{1<<32 | unix.AF_ALG}, log},
		{"default", ModeComplain, "socket", [6]uint64{unix.AF_INET}, allow},
		{"default", ModeEnforce, "socket", [6]uint64{unix.AF_MAX}, eperm},
		{"default", ModeEnforce, "socket", [6]uint64{1<<32 | unix.AF_INET}, eperm},
		{"default", ModeEnforce, "personality", [6]uint64{0}, allow},
		{"default", ModeEnforce, "personality", [6]uint64{0xffffffff}, allow},
		{"default", ModeEnforce, "personality", [6]uint64{perLinux32 | uname26}, allow},
		{"default", ModeEnforce, "personality", [6]uint64{0x0040000}, eperm}, // ADDR_NO_RANDOMIZE
		{"default", ModeEnforce, "personality", [6]uint64{0xfffffffe}, eperm},
		{"default", ModeEnforce, "personality", [6]uint64{0xffffffffffffffff}, eperm},
		{"default", ModeEnforce, "io_uring_setup", [6]uint64{}, eperm},
		{"sysadmin", ModeEnforce, "io_uring_setup", [6]uint64{}, eperm},
		{"default", ModeComplain, "io_uring_setup", [6]uint64{}, log},
		{"sysadmin", ModeComplain, "io_uring_setup", [6]uint64{}, log},
		{"default", ModeComplain, "userfaultfd", [6]uint64{}, log},
		{"default", ModeComplain, "kexec_load", [6]uint64{}, log},
		{"default", ModeComplain, "modify_ldt", [6]uint64{}, log},
		{"default", ModeComplain, "clone3", [6]uint64{}, enosys},
		{"default", ModeComplain, "no_such_syscall", [6]uint64{}, enosys},
		{"default", ModeComplain, "read", [6]uint64{}, allow},
		{"default", ModeComplain, "mount", [6]uint64{}, log},
		{"sysadmin", ModeEnforce, "mount", [6]uint64{}, allow},
		{"default", ModeEnforce, "ptrace", [6]uint64{}, eperm},
		{"default", ModeEnforce, "process_vm_readv", [6]uint64{}, eperm},
		{"default", ModeEnforce, "bpf", [6]uint64{}, eperm},
		{"sysadmin", ModeEnforce, "bpf", [6]uint64{}, allow},
		{"default", ModeEnforce, "keyctl", [6]uint64{}, eperm},
		{"default", ModeComplain, "keyctl", [6]uint64{}, log},
		{"default", ModeEnforce, "userfaultfd", [6]uint64{}, eperm},
		{"sysadmin", ModeEnforce, "kexec_load", [6]uint64{}, eperm},
		{"sysadmin", ModeEnforce, "modify_ldt", [6]uint64{}, eperm},
	}
	for _, c := range cases {
		p := mustGenerate(t, specWith(capSets[c.caps]), Policy{Arch: "amd64", Mode: c.mode})
		if got := verdictOf(p, c.syscall, c.args); got != c.want {
			t.Errorf("%s/%s: %s(%#x) = %s, want %s", c.caps, c.mode, c.syscall, c.args[0], got, c.want)
		}
	}
	ptrace := mustGenerate(t, specWith([]string{"CAP_SYS_PTRACE"}), Policy{Arch: "amd64"})
	if got := verdictOf(ptrace, "process_vm_writev", [6]uint64{}); got != allow {
		t.Errorf("CAP_SYS_PTRACE: process_vm_writev = %s, want allow", got)
	}
	netadmin := mustGenerate(t, specWith([]string{"CAP_NET_ADMIN"}), Policy{Arch: "amd64"})
	if got := verdictOf(netadmin, "socket", [6]uint64{unix.AF_CAN}); got != allow {
		t.Errorf("CAP_NET_ADMIN: socket(AF_CAN) = %s, want allow", got)
	}
}

func verdictOf(p *specs.LinuxSeccomp, name string, args [6]uint64) string {
	switch act, errno := Evaluate(p, name, args); {
	case act == specs.ActAllow:
		return "allow"
	case act == specs.ActLog:
		return "log"
	case act == specs.ActErrno && errno == DenyErrno:
		return "eperm"
	case act == specs.ActErrno && errno == UnknownErrno:
		return "enosys"
	default:
		return string(act)
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, c := range []struct {
		spec *specs.Spec
		p    Policy
		want string
	}{
		{nil, Policy{}, "spec is nil"},
		{specWith(nil), Policy{Mode: "audit"}, `mode "audit"`},
		{specWith(nil), Policy{Arch: "riscv64"}, `arch "riscv64"`},
	} {
		_, err := Generate(c.spec, c.p)
		if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Generate(%+v) = %v, want ErrInvalidPolicy naming %q", c.p, err, c.want)
		}
	}
	// A spec without process or capabilities is a container with none.
	if _, err := Generate(&specs.Spec{}, Policy{Arch: "amd64"}); err != nil {
		t.Errorf("empty spec: %v", err)
	}
}

func TestCapsOf(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN"},
		Effective:   []string{"CAP_SYS_ADMIN"}, // dropped by runc's execve: does not count
		Inheritable: []string{"CAP_SYS_PTRACE"},
		Ambient:     []string{"CAP_NET_ADMIN"},
	}}}
	caps := capsOf(spec)
	for c, want := range map[string]bool{"CAP_CHOWN": true, "CAP_SYS_ADMIN": false, "CAP_SYS_PTRACE": true, "CAP_NET_ADMIN": true} {
		if caps.has(c) != want {
			t.Errorf("capsOf: %s = %v, want %v", c, caps.has(c), want)
		}
	}
}

// TestBaselineData guards the hand-written lists against typos and
// contradictions.
func TestBaselineData(t *testing.T) {
	lists := map[string][]string{"alwaysAllowed": alwaysAllowed, "hardDenied": hardDenied, "runcCritical": runcCritical}
	for _, g := range capGroups {
		lists["capGroup "+strings.Join(g.caps, ",")] = g.names
	}
	for name, l := range lists {
		for _, n := range l {
			if _, ok := knownSyscalls()[n]; !ok {
				t.Errorf("%s: %q is not a known syscall", name, n)
			}
		}
	}
	for _, n := range hardDenied {
		if slices.Contains(alwaysAllowed, n) {
			t.Errorf("%s is both always allowed and hard-denied", n)
		}
		for _, g := range capGroups {
			if slices.Contains(g.names, n) {
				t.Errorf("%s is both capability-gated and hard-denied", n)
			}
		}
	}
	for _, n := range runcCritical {
		if !slices.Contains(alwaysAllowed, n) {
			t.Errorf("runc-critical %s is not always allowed", n)
		}
	}
	for n, c := range conditionals {
		if slices.Contains(alwaysAllowed, n) {
			t.Errorf("conditional %s is also always allowed", n)
		}
		for capName, caps := range capSets {
			if clash, _ := c.allowed(capsOf(specWith(caps))).intersect(c.hard); len(clash) > 0 {
				t.Errorf("%s with %s caps: allowed and hard-denied overlap", n, capName)
			}
		}
	}
}

// TestCompatABIs: the generated filter covers the native ABI only unless
// the policy turns compat ABIs on, whatever order they are named in; names
// that do not exist on the arch, or are repeated, fail naming the value.
func TestCompatABIs(t *testing.T) {
	cases := []struct {
		goarch string
		compat []string
		want   []specs.Arch
		err    string
	}{
		{"amd64", nil, []specs.Arch{specs.ArchX86_64}, ""},
		{"amd64", []string{"x86"}, []specs.Arch{specs.ArchX86_64, specs.ArchX86}, ""},
		{"amd64", []string{"x32"}, []specs.Arch{specs.ArchX86_64, specs.ArchX32}, ""},
		{"amd64", []string{"x32", "x86"}, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}, ""},
		{"arm64", nil, []specs.Arch{specs.ArchAARCH64}, ""},
		{"arm64", []string{"arm"}, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}, ""},
		{"amd64", []string{"arm"}, nil, `compat ABI "arm" (compat_abis[0])`},
		{"arm64", []string{"x86"}, nil, `compat ABI "x86" (compat_abis[0])`},
		{"amd64", []string{"x86", "x86"}, nil, `compat ABI "x86" (compat_abis[1]) is named twice`},
		{"amd64", []string{"i386"}, nil, `"i386"`},
	}
	for _, c := range cases {
		p, err := Generate(specWith(defaultCaps), Policy{Arch: c.goarch, CompatABIs: c.compat})
		if c.err != "" {
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %q: err %v, want ErrInvalidPolicy containing %s", c.goarch, c.compat, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s %q: %v", c.goarch, c.compat, err)
		}
		if !slices.Equal(p.Architectures, c.want) {
			t.Errorf("%s %q: architectures %q, want %q", c.goarch, c.compat, p.Architectures, c.want)
		}
		// The rules do not depend on the ABIs covered, except that a filter
		// of the 64-bit ABI alone leaves out the names absent from it.
		all := mustGenerate(t, specWith(defaultCaps), Policy{Arch: c.goarch, CompatABIs: CompatABINames(c.goarch)})
		want := all.Syscalls
		if len(c.want) == 1 {
			want = withoutNames(want, absentNative()[familyOf(c.goarch)])
		}
		if !reflect.DeepEqual(p.Syscalls, want) {
			t.Errorf("%s %q: rules differ from the all-ABI profile's", c.goarch, c.compat)
		}
	}
}

// withoutNames is rules with the names in drop taken out, and rules left
// without names dropped.
func withoutNames(rules []specs.LinuxSyscall, drop map[string]bool) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, r := range rules {
		r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return drop[n] })
		if len(r.Names) > 0 {
			out = append(out, r)
		}
	}
	return out
}
