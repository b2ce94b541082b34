package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// emit renders verdicts as runtime-spec rules, in this order:
//
//  1. one SCMP_ACT_ALLOW rule naming every unconditionally allowed syscall;
//  2. one explicit deny rule for the unconditionally hard-denied syscalls
//     (SCMP_ACT_ERRNO/EPERM when enforcing, SCMP_ACT_LOG when complaining);
//  3. one explicit deny rule for the unconditionally policy-denied syscalls
//     (SCMP_ACT_ERRNO/EPERM when enforcing, SCMP_ACT_LOG when complaining);
//  4. clone3 with SCMP_ACT_ERRNO/ENOSYS, in both modes — not a denial;
//  5. per argument-conditioned syscall, sorted by name: its allow rules,
//     then its hard deny rules, then its policy deny rules, all with
//     arguments, together covering every call; allow and deny rules are
//     disjoint, and where pairCover finds a shorter cover the deny rules
//     are written from it and overlap one another (one action).
//
// A syscall is never named by both an unconditional and a conditional rule:
// libseccomp refuses that combination.
func emit(vs []verdict, mode Mode) []specs.LinuxSyscall {
	hardRule := func(names []string, args []specs.LinuxSeccompArg) specs.LinuxSyscall {
		errno := DenyErrno
		return specs.LinuxSyscall{Names: names, Action: specs.ActErrno, ErrnoRet: &errno, Args: args}
	}
	// Complain mode is the operator's choice (a pod can only ask for it
	// where node config allows): it allows and logs every denial, hard or
	// policy, so that what a workload needs can be seen before enforcing.
	if mode == ModeComplain {
		hardRule = func(names []string, args []specs.LinuxSeccompArg) specs.LinuxSyscall {
			return specs.LinuxSyscall{Names: names, Action: specs.ActLog, Args: args}
		}
	}
	policyRule := hardRule
	var allowed, hard, policy, enosys []string
	var conditional []specs.LinuxSyscall
	for _, v := range vs {
		switch {
		case v.enosys:
			enosys = append(enosys, v.name)
		case len(v.hard) == 0 && len(v.policy) == 0:
			allowed = append(allowed, v.name)
		case len(v.allowed) == 0 && len(v.policy) == 0:
			hard = append(hard, v.name)
		case len(v.allowed) == 0 && (len(v.hard) == 0 || mode == ModeEnforce):
			// Enforcing, hard and policy denials act alike; one
			// unconditional rule is simpler and cheaper than pieces.
			policy = append(policy, v.name)
		default:
			for _, b := range compact(v.allowed) {
				conditional = append(conditional, specs.LinuxSyscall{Names: []string{v.name}, Action: specs.ActAllow, Args: b.specArgs()})
			}
			// Hard and policy denials share one action in either mode,
			// so their rules may overlap one another (never an allow
			// rule): where a cover of overlapping cubes is shorter
			// than the exact partitions, it is written instead.
			deny := append(append(set{}, v.hard...), v.policy...)
			if cover, ok := pairCover(deny, v.allowed); ok && len(cover) < len(compact(v.hard))+len(compact(v.policy)) {
				for _, b := range cover {
					conditional = append(conditional, policyRule([]string{v.name}, b.specArgs()))
				}
				continue
			}
			for _, b := range compact(v.hard) {
				conditional = append(conditional, hardRule([]string{v.name}, b.specArgs()))
			}
			for _, b := range compact(v.policy) {
				conditional = append(conditional, policyRule([]string{v.name}, b.specArgs()))
			}
		}
	}
	var out []specs.LinuxSyscall
	if len(allowed) > 0 {
		out = append(out, specs.LinuxSyscall{Names: allowed, Action: specs.ActAllow})
	}
	if len(hard) > 0 {
		out = append(out, hardRule(hard, nil))
	}
	if len(policy) > 0 {
		out = append(out, policyRule(policy, nil))
	}
	if len(enosys) > 0 {
		errno := UnknownErrno
		out = append(out, specs.LinuxSyscall{Names: enosys, Action: specs.ActErrno, ErrnoRet: &errno})
	}
	return append(out, conditional...)
}

// IsExplicitDeny reports whether r is one of a generated profile's explicit
// deny rules: SCMP_ACT_ERRNO with errnoRet EPERM, or SCMP_ACT_LOG. These are
// the rules denial streaming may turn into SCMP_ACT_NOTIFY; they never name
// a syscall runc's init needs after loading the filter. The clone3 rule
// (ERRNO/ENOSYS) is not one: libcs probe clone3 on every thread start.
func IsExplicitDeny(r specs.LinuxSyscall) bool {
	switch r.Action {
	case specs.ActLog:
		return true
	case specs.ActErrno:
		return r.ErrnoRet != nil && *r.ErrnoRet == DenyErrno
	}
	return false
}

// Evaluate returns the action a generated profile takes for a call of the
// named syscall with args (64-bit ABI values; pass 32-bit ABI arguments
// zero-extended), and the errno when the action is SCMP_ACT_ERRNO. The
// shim uses it to answer a notification with the verdict the rule had
// before it was rewritten to SCMP_ACT_NOTIFY.
//
// The first matching rule wins, which equals libseccomp's result for
// generated profiles because their rules for one syscall never overlap with
// different actions; for arbitrary profiles it is only an approximation.
// Conditions on the same argument are ORed, as runc does.
func Evaluate(p *specs.LinuxSeccomp, name string, args [6]uint64) (specs.LinuxSeccompAction, uint) {
	for _, r := range p.Syscalls {
		if !containsName(r.Names, name) || !matches(r.Args, args) {
			continue
		}
		return r.Action, errnoOf(r.Action, r.ErrnoRet)
	}
	return p.DefaultAction, errnoOf(p.DefaultAction, p.DefaultErrnoRet)
}

func errnoOf(a specs.LinuxSeccompAction, ret *uint) uint {
	switch {
	case a != specs.ActErrno:
		return 0
	case ret == nil:
		return DenyErrno // runc's default errno
	}
	return *ret
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// matches implements runc's reading of a rule's conditions: AND across
// arguments, unless one argument is named twice, in which case runc adds
// each condition as a rule of its own (OR).
func matches(conds []specs.LinuxSeccompArg, args [6]uint64) bool {
	if len(conds) == 0 {
		return true
	}
	seen := map[uint]bool{}
	repeated := false
	for _, c := range conds {
		repeated = repeated || seen[c.Index]
		seen[c.Index] = true
	}
	for _, c := range conds {
		ok := c.Index < 6 && compare(c, args[c.Index])
		if repeated && ok {
			return true
		}
		if !repeated && !ok {
			return false
		}
	}
	return !repeated
}

func compare(c specs.LinuxSeccompArg, x uint64) bool {
	switch c.Op {
	case specs.OpEqualTo:
		return x == c.Value
	case specs.OpNotEqual:
		return x != c.Value
	case specs.OpLessThan:
		return x < c.Value
	case specs.OpLessEqual:
		return x <= c.Value
	case specs.OpGreaterThan:
		return x > c.Value
	case specs.OpGreaterEqual:
		return x >= c.Value
	case specs.OpMaskedEqual:
		return x&c.Value == c.ValueTwo
	}
	return false
}
