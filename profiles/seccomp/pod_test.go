package seccomp

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// allowList returns a pod profile allowing runc's needs plus extra rules.
func allowList(extra ...specs.LinuxSyscall) *specs.LinuxSeccomp {
	base := append(append([]string{}, runcCritical...), "socket", "openat", "mkdir", "io_uring_setup", "mount", "personality")
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: append([]specs.LinuxSyscall{
			{Names: base, Action: specs.ActAllow},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.CLONE_NEWUSER, Op: specs.OpMaskedEqual}}},
		}, extra...),
	}
}

func TestPodIntersection(t *testing.T) {
	denyList := &specs.LinuxSeccomp{
		DefaultAction: specs.ActLog,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"chmod", "fchmodat"}, Action: specs.ActErrno},
			{Names: []string{"socket"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_INET6, Op: specs.OpEqualTo}}},
		},
	}
	inetOnly := allowList()
	inetOnly.Syscalls[0].Names = inetOnly.Syscalls[0].Names[:len(runcCritical)]
	inetOnly.Syscalls = append(inetOnly.Syscalls,
		specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo}}},
		// Two conditions on one argument: runc ORs them.
		specs.LinuxSyscall{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
			{Index: 0, Value: 0, Op: specs.OpEqualTo}, {Index: 0, Value: 0x0040000, Op: specs.OpEqualTo},
		}},
		// Allowed, then taken back by an overlapping denying rule.
		specs.LinuxSyscall{Names: []string{"ioctl"}, Action: specs.ActAllow},
		specs.LinuxSyscall{Names: []string{"ioctl"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 1, Value: unix.TIOCSTI, Op: specs.OpEqualTo}}},
	)
	cases := []struct {
		pod     *specs.LinuxSeccomp
		syscall string
		args    [6]uint64
		want    string
	}{
		{allowList(), "mkdir", [6]uint64{}, "allow"},
		{allowList(), "rmdir", [6]uint64{}, "eperm"},          // pod does not allow it
		{allowList(), "io_uring_setup", [6]uint64{}, "eperm"}, // baseline hard-denies it
		{allowList(), "mount", [6]uint64{}, "eperm"},          // baseline needs CAP_SYS_ADMIN
		{allowList(), "clone", [6]uint64{goThreadClone}, "allow"},
		{allowList(), "clone", [6]uint64{unix.CLONE_NEWUSER}, "eperm"},
		{allowList(), "socket", [6]uint64{unix.AF_ALG}, "eperm"},
		{allowList(), "clone3", [6]uint64{}, "enosys"},
		{inetOnly, "socket", [6]uint64{unix.AF_INET}, "allow"},
		{inetOnly, "socket", [6]uint64{unix.AF_UNIX}, "eperm"},
		{inetOnly, "personality", [6]uint64{0}, "allow"},
		{inetOnly, "personality", [6]uint64{0x0040000}, "eperm"}, // the pod allows it, the baseline does not
		{inetOnly, "personality", [6]uint64{8}, "eperm"},         // the baseline allows it, the pod does not
		{inetOnly, "ioctl", [6]uint64{0, unix.TCGETS}, "allow"},
		{inetOnly, "ioctl", [6]uint64{0, unix.TIOCSTI}, "eperm"},
		{denyList, "chmod", [6]uint64{}, "eperm"},
		{denyList, "mkdir", [6]uint64{}, "allow"},
		{denyList, "mount", [6]uint64{}, "eperm"},
		{denyList, "socket", [6]uint64{unix.AF_INET6}, "eperm"},
		{denyList, "socket", [6]uint64{unix.AF_INET}, "allow"},
		{denyList, "socket", [6]uint64{unix.AF_VSOCK}, "eperm"},
	}
	for i, c := range cases {
		p, err := Generate(specWith(defaultCaps), Policy{Arch: "amd64", Pod: c.pod})
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		checkShape(t, p, "amd64", ModeEnforce)
		if got := verdictOf(p, c.syscall, c.args); got != c.want {
			t.Errorf("case %d: %s(%#x, %#x) = %s, want %s", i, c.syscall, c.args[0], c.args[1], got, c.want)
		}
	}
}

func TestPodErrors(t *testing.T) {
	arg := func(a specs.LinuxSeccompArg) *specs.LinuxSeccomp {
		return allowList(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{a}})
	}
	for _, c := range []struct {
		name  string
		pod   *specs.LinuxSeccomp
		field string
	}{
		{"unknown default", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}, "defaultAction"},
		{"listener", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock"}, "listenerPath"},
		{"arch", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, "architectures[0]"},
		{"flag", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"}}, "flags[0]"},
		{"unknown syscall", allowList(specs.LinuxSyscall{Names: []string{"mkdir", "mkdri"}, Action: specs.ActAllow}), "syscalls[2].names[1]"},
		{"no names", allowList(specs.LinuxSyscall{Action: specs.ActAllow}), "syscalls[2].names"},
		{"unknown action", allowList(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: "SCMP_ACT_SOMETIMES"}), "syscalls[2].action"},
		{"index", arg(specs.LinuxSeccompArg{Index: 6, Op: specs.OpEqualTo}), "syscalls[2].args[0].index"},
		{"operator", arg(specs.LinuxSeccompArg{Index: 0, Op: "SCMP_CMP_ALMOST"}), "syscalls[2].args[0].op"},
		{"wide value", arg(specs.LinuxSeccompArg{Index: 0, Value: 1 << 40, Op: specs.OpEqualTo}), "syscalls[2].args[0]"},
		{"denies write", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"write"}, Action: specs.ActErrno}}}, "write must be allowed"},
		{"conditions write", allowList(specs.LinuxSyscall{Names: []string{"write"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 2, Op: specs.OpEqualTo}}}), "write must be allowed"},
		{"omits futex", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}}}, "must be allowed"},
		{"no threads", allowList(specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActErrno}), "clone must be allowed"},
		{"too complex", allowList(specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
			{Index: 0, Value: 5, Op: specs.OpNotEqual}, {Index: 1, Value: 5, Op: specs.OpNotEqual}, {Index: 2, Value: 5, Op: specs.OpNotEqual},
		}}), "syscalls[2].args"},
	} {
		_, err := Generate(specWith(defaultCaps), Policy{Arch: "amd64", Pod: c.pod})
		if !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: got %v, want ErrInvalidProfile naming %q", c.name, err, c.field)
		}
	}
}

// TestPodRuleLimit: conditions that expand past maxConditionalRules in
// total are refused, since runc would spend seconds compiling them.
func TestPodRuleLimit(t *testing.T) {
	pod := allowList()
	// Names of the 64-bit ABI: the others are left out of its filter.
	native := slices.DeleteFunc(sortedKnown(familyX86), func(n string) bool { return absentNative()[familyX86][n] })
	for _, n := range native[:60] {
		pod.Syscalls = append(pod.Syscalls, specs.LinuxSyscall{Names: []string{n}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
			{Index: 1, Value: 0x1234, Op: specs.OpNotEqual},
		}})
	}
	_, err := Generate(specWith(defaultCaps), Policy{Arch: "amd64", Pod: pod})
	if !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), "at most 1024") {
		t.Errorf("got %v, want the rule limit", err)
	}
}

// TestPodArgsKept checks that the pod's argument conditions reach the
// effective profile as rules, not just as a verdict.
func TestPodArgsKept(t *testing.T) {
	pod := allowList(specs.LinuxSyscall{Names: []string{"mkdirat"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
		{Index: 2, Value: 0o700, Op: specs.OpEqualTo},
	}})
	p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "amd64", Pod: pod})
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow && len(r.Names) == 1 && r.Names[0] == "mkdirat" {
			if len(r.Args) != 1 || r.Args[0] != (specs.LinuxSeccompArg{Index: 2, Value: 0o700, Op: specs.OpEqualTo}) {
				t.Errorf("mkdirat allow rule args %+v", r.Args)
			}
			return
		}
	}
	t.Error("no conditional allow rule for mkdirat")
}

// TestRecordedNarrows: a recorded profile narrows the result like a pod
// profile, alone or together with one.
func TestRecordedNarrows(t *testing.T) {
	rec := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: append(InitSyscalls(), "mkdir", "mount"), Action: specs.ActAllow},
	}}
	for _, c := range []struct {
		pod     *specs.LinuxSeccomp
		syscall string
		want    string
	}{
		{nil, "mkdir", "allow"},
		{nil, "rmdir", "eperm"},  // not recorded
		{nil, "mount", "eperm"},  // recorded, but the baseline denies it
		{nil, "socket", "eperm"}, // not recorded
		{allowList(), "mkdir", "allow"},
		{allowList(), "openat", "allow"},
		{allowList(), "socket", "eperm"}, // the pod allows it, the recording does not
	} {
		p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "amd64", Pod: c.pod, Recorded: rec})
		checkShape(t, p, "amd64", ModeEnforce)
		if got := verdictOf(p, c.syscall, [6]uint64{unix.AF_INET}); got != c.want {
			t.Errorf("pod %v: %s = %s, want %s", c.pod != nil, c.syscall, got, c.want)
		}
	}
	bad := &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	if _, err := Generate(specWith(defaultCaps), Policy{Arch: "amd64", Recorded: bad}); !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), "recorded profile: defaultAction") {
		t.Errorf("bad recorded profile: %v", err)
	}
}
