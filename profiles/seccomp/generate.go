package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Mode says what the profile does with a call it denies.
type Mode string

const (
	// ModeEnforce fails denied calls with EPERM (and logs them).
	ModeEnforce Mode = "enforce"
	// ModeComplain lets every denied call run and logs it.
	ModeComplain Mode = "complain"
)

// Errno values of the generated profile.
const (
	// DenyErrno is what an enforced explicit deny rule returns.
	DenyErrno uint = uint(unix.EPERM)
	// UnknownErrno is the default action's errno: a syscall the profile does
	// not know fails as if the kernel lacked it, which callers handle.
	UnknownErrno uint = uint(unix.ENOSYS)
)

// Sentinel errors; callers wrap them into their own error kinds.
var (
	// ErrInvalidPolicy reports a Policy field the generator cannot use.
	ErrInvalidPolicy = errors.New("invalid seccomp policy")
	// ErrInvalidProfile reports a malformed or unusable pod profile; the
	// message names the offending field.
	ErrInvalidProfile = errors.New("invalid pod seccomp profile")
	// ErrCompileUnsupported is returned by Compile and LibraryVersion in
	// builds without libseccomp.
	ErrCompileUnsupported = errors.New("seccomp support not compiled in (build with CGO_ENABLED=1 -tags seccomp)")
)

// maxConditionalRules bounds the argument-conditioned rules of a profile.
// The baseline has about 90; only a pod profile can add many, and runc pays
// libseccomp's compile time, which grows faster than linearly with them, at
// every container start (10,000 rules take seconds).
const maxConditionalRules = 1024

// Policy is the node's and pod's say in the generated profile.
type Policy struct {
	// Mode is ModeEnforce or ModeComplain; empty means ModeEnforce.
	Mode Mode
	// Arch is the GOARCH the container runs on ("amd64" or "arm64"); empty
	// means the generator's own. The profile covers the arch's compat ABIs.
	Arch string
	// Pod is the pod's own (Localhost) profile, or nil. The result allows a
	// call only if both Pod and the baseline allow it.
	Pod *specs.LinuxSeccomp
	// Recorded is a profile recorded for the workload (record mode's
	// output), or nil. It narrows the result like Pod; with both, a call
	// must be allowed by all three.
	Recorded *specs.LinuxSeccomp
	// CompatABIs are the compat ABIs the filter covers besides the native
	// one: "x86" and "x32" on amd64, "arm" on arm64 (see CompatABINames).
	// Empty means the native ABI only: a call through any other ABI hits
	// the filter's bad-architecture action (see BadArchAction).
	CompatABIs []string
}

// BadArchAction is what a call from an ABI the filter does not cover gets.
// runc v1.5.2's libcontainer never sets libseccomp's bad-architecture
// action, so libseccomp's default applies: SCMP_ACT_KILL_THREAD, the
// calling thread dies with SIGSYS (a single-threaded process dies of it;
// a shell sees exit status 159). The kernel audits it whatever the filter
// flags, as type=1326 with sig=31 and the compat arch. runc's ENOSYS stub
// does not change it: the stub only knows the architectures in the
// profile and jumps to libseccomp's filter for every other one.
const BadArchAction = "SCMP_ACT_KILL_THREAD"

// compatABIs maps a GOARCH to the compat ABI names a node may turn on, in
// the order they appear in a profile.
var compatABIs = map[string][]struct {
	name string
	arch specs.Arch
}{
	"amd64": {{"x86", specs.ArchX86}, {"x32", specs.ArchX32}},
	"arm64": {{"arm", specs.ArchARM}},
}

// CompatABINames returns the compat ABI names valid on goarch, for
// configuration checks and messages.
func CompatABINames(goarch string) []string {
	var out []string
	for _, c := range compatABIs[goarch] {
		out = append(out, c.name)
	}
	return out
}

// FilterABIs returns the seccomp architectures a profile for goarch with
// the named compat ABIs turned on covers: the native ABI first, then the
// compat ones in a fixed order. An unknown or repeated name is an error
// naming it.
func FilterABIs(goarch string, compat []string) ([]specs.Arch, error) {
	all, err := ABIs(goarch)
	if err != nil {
		return nil, err
	}
	on := map[string]bool{}
	for i, n := range compat {
		if !slices.Contains(CompatABINames(goarch), n) {
			return nil, fmt.Errorf("compat ABI %q (compat_abis[%d]): want one of %q on %s: %w", n, i, CompatABINames(goarch), goarch, ErrInvalidPolicy)
		}
		if on[n] {
			return nil, fmt.Errorf("compat ABI %q (compat_abis[%d]) is named twice: %w", n, i, ErrInvalidPolicy)
		}
		on[n] = true
	}
	out := []specs.Arch{all[0]}
	for _, c := range compatABIs[goarch] {
		if on[c.name] {
			out = append(out, c.arch)
		}
	}
	return out, nil
}

// ABIs returns every seccomp architecture a container on goarch can call
// the kernel through, native first; a generated profile covers the native
// one and those Policy.CompatABIs turns on (FilterABIs).
func ABIs(goarch string) ([]specs.Arch, error) {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}, nil
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}, nil
	}
	return nil, fmt.Errorf("arch %q: only amd64 and arm64 are supported: %w", goarch, ErrInvalidPolicy)
}

func familyOf(goarch string) family {
	if goarch == "arm64" {
		return familyARM
	}
	return familyX86
}

// keepAbsentNames turns the pruning of names absent from the 64-bit ABI
// off; only the test that compares the two compiled programs sets it.
var keepAbsentNames = false

// Generate returns the profile for a container with spec under policy p.
// It is pure: the same inputs always give the same profile.
func Generate(spec *specs.Spec, p Policy) (*specs.LinuxSeccomp, error) {
	if spec == nil {
		return nil, fmt.Errorf("spec is nil: %w", ErrInvalidPolicy)
	}
	mode := p.Mode
	switch mode {
	case "":
		mode = ModeEnforce
	case ModeEnforce, ModeComplain:
	default:
		return nil, fmt.Errorf("mode %q: want enforce or complain: %w", p.Mode, ErrInvalidPolicy)
	}
	goarch := p.Arch
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	abis, err := FilterABIs(goarch, p.CompatABIs)
	if err != nil {
		return nil, err
	}
	var pods []*podProfile
	if p.Pod != nil {
		pod, err := parsePod(p.Pod)
		if err != nil {
			return nil, err
		}
		pods = append(pods, pod)
	}
	if p.Recorded != nil {
		rec, err := parsePod(p.Recorded)
		if err != nil {
			return nil, fmt.Errorf("recorded profile: %w", err)
		}
		pods = append(pods, rec)
	}
	fam := familyOf(goarch)
	verdicts, err := decide(capsOf(spec), fam, pods)
	if err != nil {
		return nil, err
	}
	if len(abis) == 1 && !keepAbsentNames {
		// The filter covers the 64-bit ABI alone: names that do not exist
		// there would compile to nothing (absentNative).
		absent := absentNative()[fam]
		verdicts = slices.DeleteFunc(verdicts, func(v verdict) bool { return absent[v.name] })
	}
	rules := emit(verdicts, mode)
	conditional := 0
	for _, r := range rules {
		if len(r.Args) > 0 {
			conditional++
		}
	}
	if conditional > maxConditionalRules {
		return nil, fmt.Errorf("syscalls: argument conditions expand to %d rules, at most %d are accepted: %w", conditional, maxConditionalRules, ErrInvalidProfile)
	}
	enosys := UnknownErrno
	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &enosys,
		Architectures:   abis,
		// SECCOMP_FILTER_FLAG_LOG makes every non-allow result an audit
		// record, which is one of the denial sources. Naming any flag stops
		// runc from adding its default SPEC_ALLOW, so it is named too to
		// keep runc's speculative-store-bypass behaviour.
		Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: rules,
	}, nil
}

// verdict is the decision for one syscall name.
type verdict struct {
	name string
	// enosys marks clone3: every call fails with ENOSYS.
	enosys bool
	// allowed, hard and policy are disjoint and cover every call: hard
	// and policy denials fail with EPERM when enforcing and are allowed
	// and logged when complaining. Hard denials are those no capability
	// or pod profile can lift.
	allowed, hard, policy set
}

// decide computes a verdict for every syscall known on fam: the baseline
// narrowed by every pod profile.
func decide(caps capSet, fam family, pods []*podProfile) ([]verdict, error) {
	base := map[string]set{}
	for _, n := range alwaysAllowed {
		base[n] = fullSet
	}
	for _, g := range capGroups {
		if caps.hasAny(g.caps...) {
			for _, n := range g.names {
				base[n] = fullSet
			}
		}
	}
	hard := map[string]bool{}
	for _, n := range hardDenied {
		hard[n] = true
	}
	var out []verdict
	for _, n := range sortedKnown(fam) {
		v := verdict{name: n}
		switch c, isCond := conditionals[n]; {
		case n == "clone3":
			// glibc and musl try clone3 first and fall back to clone on
			// ENOSYS, where the flags can be checked; clone3 passes them
			// behind a pointer seccomp cannot read.
			v.enosys = true
			out = append(out, v)
			continue
		case hard[n]:
			v.hard = fullSet
		case isCond:
			v.allowed, v.hard = c.allowed(caps), c.hard
		default:
			v.allowed = base[n]
		}
		var err error
		for _, pod := range pods {
			if v.allowed, err = v.allowed.intersect(pod.allowed(n)); err != nil {
				return nil, fmt.Errorf("syscall %s: %w: %w", n, err, ErrInvalidProfile)
			}
		}
		if v.policy, err = v.allowed.union(v.hard); err == nil {
			v.policy, err = v.policy.complement()
		}
		if err != nil {
			return nil, fmt.Errorf("syscall %s: %w: %w", n, err, ErrInvalidProfile)
		}
		if fam == familyX86 && multiplexers[n] != nil && len(v.allowed) > 0 && len(v.policy) > 0 {
			// On 32-bit x86 libseccomp rewrites every rule on a
			// multiplexed call (socket, semop, ...) into a rule on
			// socketcall or ipc selected by the first argument, unless the
			// multiplexer already has an unconditional rule. Two actions
			// for one call then collide ("file exists") and the profile
			// cannot load. Keeping the multiplexer unconditional avoids
			// that; a pod that allows it only in part gets it denied,
			// which never allows more than the pod asked for.
			if v.policy, err = v.policy.union(v.allowed); err != nil {
				return nil, fmt.Errorf("syscall %s: %w: %w", n, err, ErrInvalidProfile)
			}
			v.allowed = nil
		}
		if err := checkCritical(v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if fam == familyX86 {
		denyMultiplexers(out)
	}
	return out, nil
}

// multiplexers are the 32-bit x86 calls that carry others by number, with
// the calls each carries (the first argument selects one, linux/net.h and
// ipc/syscall.c); the carried calls' own arguments sit in user memory,
// behind a pointer seccomp cannot follow.
var multiplexers = map[string][]string{
	"socketcall": names(`socket bind connect listen accept getsockname
		getpeername socketpair send recv sendto recvfrom shutdown setsockopt
		getsockopt sendmsg recvmsg accept4 recvmmsg sendmmsg`),
	"ipc": names(`semop semget semctl semtimedop msgsnd msgrcv msgget msgctl
		shmat shmdt shmget shmctl`),
}

// denyMultiplexers denies socketcall or ipc whole unless every call it
// carries is allowed for every argument. Through a multiplexer the carried
// call's arguments cannot be checked, so a multiplexer that stays allowed
// while socket(AF_VSOCK) or a pod-denied shmget is denied would reach them
// anyway: that was a real bypass (int $0x80 socketcall(SYS_SOCKET,
// {AF_VSOCK})). Nor can it be allowed except for some call numbers:
// libseccomp rewrites every rule on a carried call into a rule on the
// multiplexer selected by the call number, so socket's allow and deny rules
// become two actions for socketcall(SYS_SOCKET) and the filter fails with
// EEXIST, unless the multiplexer's own rule is unconditional, in which case
// they are dropped. So the multiplexer is all or nothing: hard-denied when
// a carried call has a hard denial (socket's AF_ALG and AF_VSOCK), else
// policy-denied. 32-bit programs whose libc multiplexes (glibc built for
// kernels before 4.3, musl) lose those calls; the direct ones (socket is
// 359 on i386 since Linux 4.3) keep their argument checks.
func denyMultiplexers(vs []verdict) {
	byName := map[string]*verdict{}
	for i := range vs {
		byName[vs[i].name] = &vs[i]
	}
	for mux, carried := range multiplexers {
		m := byName[mux]
		if m == nil {
			continue
		}
		full, hard := true, false
		for _, n := range carried {
			c := byName[n]
			if c == nil || c.enosys || len(c.hard) > 0 || len(c.policy) > 0 {
				full = false
			}
			hard = hard || (c != nil && len(c.hard) > 0)
		}
		if full {
			continue
		}
		m.allowed, m.hard, m.policy = nil, nil, nil
		if hard {
			m.hard = fullSet
		} else {
			m.policy = fullSet
		}
	}
}

// checkCritical refuses verdicts that would deny what runc's init needs.
func checkCritical(v verdict) error {
	switch {
	case v.name == "clone":
		if !v.allowed.contains([6]uint64{goThreadClone}) {
			return fmt.Errorf("syscalls: clone must be allowed with the Go runtime's thread flags: runc's init starts threads after loading the filter: %w", ErrInvalidProfile)
		}
	case slices.Contains(runcCritical, v.name):
		if len(v.hard) > 0 || len(v.policy) > 0 {
			return fmt.Errorf("syscalls: %s must be allowed for all arguments: runc's init calls it after loading the filter: %w", v.name, ErrInvalidProfile)
		}
	}
	return nil
}

func sortedKnown(fam family) []string {
	var out []string
	for n, f := range knownSyscalls() {
		if f&fam != 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// capSet is the capabilities a container's processes can hold.
type capSet map[string]bool

func (c capSet) has(name string) bool { return c[name] }

func (c capSet) hasAny(names ...string) bool {
	return slices.ContainsFunc(names, c.has)
}

// capsOf returns what the container can hold after runc's execve: the
// bounding set, plus inheritable and ambient capabilities, which survive
// execve for root even outside the bounding set. Effective and permitted
// capabilities not in those are dropped by the execve and do not count.
func capsOf(spec *specs.Spec) capSet {
	caps := capSet{}
	if spec.Process == nil || spec.Process.Capabilities == nil {
		return caps
	}
	c := spec.Process.Capabilities
	for _, l := range [][]string{c.Bounding, c.Inheritable, c.Ambient} {
		for _, n := range l {
			caps[n] = true
		}
	}
	return caps
}
