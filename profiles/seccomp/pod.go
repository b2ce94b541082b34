package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits on a pod profile, which is untrusted input.
const (
	maxPodRules = 1024
	maxPodNames = 8192
)

// podProfile is a validated pod profile reduced to the calls it allows.
type podProfile struct {
	// named holds the allowed calls of every syscall a rule names.
	named map[string]set
	// others is what the default action allows every other syscall: all
	// calls for deny-list profiles (default ALLOW or LOG), none otherwise.
	others set
}

func (p *podProfile) allowed(name string) set {
	if s, ok := p.named[name]; ok {
		return s
	}
	return p.others
}

// parsePod validates p and indexes it by syscall name. Errors name the
// offending field in runtime-spec JSON terms, e.g. syscalls[3].args[0].op.
func parsePod(p *specs.LinuxSeccomp) (*podProfile, error) {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, a...), ErrInvalidProfile)
	}
	allows, ok := podActions[p.DefaultAction]
	if !ok {
		return nil, bad("defaultAction", "unknown action %q", p.DefaultAction)
	}
	if p.ListenerPath != "" || p.ListenerMetadata != "" {
		// A notify agent would run with the shim's privileges, and stockade
		// owns the listener for denial streaming.
		return nil, bad("listenerPath", "a pod profile cannot name a seccomp notify listener")
	}
	for i, a := range p.Architectures {
		if !knownArch(a) {
			return nil, bad(fmt.Sprintf("architectures[%d]", i), "unknown architecture %q", a)
		}
	}
	for i, f := range p.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC":
		default:
			return nil, bad(fmt.Sprintf("flags[%d]", i), "unknown flag %q", f)
		}
	}
	if len(p.Syscalls) > maxPodRules {
		return nil, bad("syscalls", "more than %d rules", maxPodRules)
	}
	allow, deny := map[string]set{}, map[string]set{}
	total := 0
	for i, r := range p.Syscalls {
		field := fmt.Sprintf("syscalls[%d]", i)
		ruleAllows, ok := podActions[r.Action]
		if !ok {
			return nil, bad(field+".action", "unknown action %q", r.Action)
		}
		if len(r.Names) == 0 {
			return nil, bad(field+".names", "no syscall named")
		}
		total += len(r.Names)
		if total > maxPodNames {
			return nil, bad("syscalls", "more than %d syscall names", maxPodNames)
		}
		for j, n := range r.Names {
			if _, ok := knownSyscalls()[n]; !ok {
				return nil, bad(fmt.Sprintf("%s.names[%d]", field, j), "unknown syscall %q", n)
			}
		}
		calls, err := ruleSet(field, r.Args, ruleAllows)
		if err != nil {
			return nil, err
		}
		idx := deny
		if ruleAllows {
			idx = allow
		}
		for _, n := range r.Names {
			if idx[n], err = idx[n].union(calls); err != nil {
				return nil, bad(field, "syscall %s: %v", n, err)
			}
		}
	}
	pp := &podProfile{named: map[string]set{}}
	if allows {
		pp.others = fullSet
	}
	// Denying rules take precedence over allowing rules that overlap them:
	// libseccomp would reject such a profile or order it arbitrarily, and
	// the stricter reading keeps the pod's intent.
	for _, idx := range []map[string]set{allow, deny} {
		for n := range idx {
			s, err := pp.others.union(allow[n])
			if err == nil {
				s, err = s.minus(deny[n])
			}
			if err != nil {
				return nil, bad("syscalls", "syscall %s: %v", n, err)
			}
			pp.named[n] = s
		}
	}
	return pp, nil
}

// podActions maps every action to whether the call runs under it.
var podActions = map[specs.LinuxSeccompAction]bool{
	specs.ActAllow: true, specs.ActLog: true,
	specs.ActErrno: false, specs.ActKill: false, specs.ActKillProcess: false,
	specs.ActKillThread: false, specs.ActTrap: false, specs.ActTrace: false,
	specs.ActNotify: false,
}

func knownArch(a specs.Arch) bool {
	switch a {
	case specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
		specs.ArchSH, specs.ArchSHEB:
		return true
	}
	return false
}

// ruleSet converts one rule's conditions to the calls it matches, read
// strictly: an allowing condition never matches an argument whose upper 32
// bits are set, and a denying condition matches every such argument. The
// kernel truncates most compared arguments (ints, flags) to 32 bits, so a
// call with a garbage upper half is the same call as its lower half; a
// pod's "deny cmd == TIOCSTI" must not be bypassed by setting bit 32, as it
// would be under libseccomp's literal 64-bit comparison. The result is thus
// never more permissive than the pod's profile.
func ruleSet(field string, conds []specs.LinuxSeccompArg, allows bool) (set, error) {
	var perArg [6][]atom
	repeated := false
	for k, c := range conds {
		f := fmt.Sprintf("%s.args[%d]", field, k)
		if c.Index > 5 {
			return nil, fmt.Errorf("%s.index: %d is not an argument number (0-5): %w", f, c.Index, ErrInvalidProfile)
		}
		// libseccomp drops the upper half of comparisons on 32-bit ABIs,
		// so a 64-bit datum means something else there.
		if c.Value > 0xffffffff || c.ValueTwo > 0xffffffff {
			return nil, fmt.Errorf("%s: values above 0xffffffff are not supported: %w", f, ErrInvalidProfile)
		}
		atoms, err := condAtoms(c, allows)
		if err != nil {
			return nil, fmt.Errorf("%s.op: %w: %w", f, err, ErrInvalidProfile)
		}
		repeated = repeated || perArg[c.Index] != nil
		if repeated {
			// runc adds each condition of a rule that names one argument
			// twice as a rule of its own: the conditions are ORed.
			return orConditions(field, conds, allows)
		}
		if atoms == nil {
			atoms = []atom{} // the condition never matches
		}
		perArg[c.Index] = atoms
	}
	s := fullSet
	for i, atoms := range perArg {
		if atoms == nil {
			continue
		}
		var next set
		for _, b := range s {
			for _, a := range atoms {
				nb := b
				nb[i] = a
				next = append(next, nb)
			}
		}
		if len(next) > maxBoxes {
			return nil, fmt.Errorf("%s.args: %w: %w", field, errTooComplex, ErrInvalidProfile)
		}
		s = next
	}
	return merge(s), nil
}

func orConditions(field string, conds []specs.LinuxSeccompArg, allows bool) (set, error) {
	var out set
	for _, c := range conds {
		s, err := ruleSet(field, []specs.LinuxSeccompArg{c}, allows)
		if err != nil {
			return nil, err
		}
		if out, err = out.union(s); err != nil {
			return nil, fmt.Errorf("%s.args: %w: %w", field, err, ErrInvalidProfile)
		}
	}
	return out, nil
}

// condAtoms returns the atoms (a union) one condition matches, read as
// ruleSet explains.
func condAtoms(c specs.LinuxSeccompArg, allows bool) ([]atom, error) {
	v := uint32(c.Value)
	var cubes []cube
	switch c.Op {
	case specs.OpEqualTo:
		cubes = []cube{{0xffffffff, v}}
	case specs.OpNotEqual:
		cubes = cube{0xffffffff, v}.complement()
	case specs.OpLessThan:
		if v > 0 {
			cubes = rangeCubes(0, v-1)
		}
	case specs.OpLessEqual:
		cubes = rangeCubes(0, v)
	case specs.OpGreaterThan:
		if v < 0xffffffff {
			cubes = rangeCubes(v+1, 0xffffffff)
		}
	case specs.OpGreaterEqual:
		cubes = rangeCubes(v, 0xffffffff)
	case specs.OpMaskedEqual:
		// (x & mask) == want can never hold if want has bits outside mask.
		if mask, want := v, uint32(c.ValueTwo); want&^mask == 0 {
			cubes = []cube{{mask, want}}
		}
	default:
		return nil, fmt.Errorf("unknown operator %q", c.Op)
	}
	var out []atom
	if !allows {
		out = append(out, high)
	}
	for _, x := range cubes {
		out = append(out, low(x))
	}
	return out, nil
}
