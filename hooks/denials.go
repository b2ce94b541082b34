package hooks

import (
	"context"
	"slices"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// DenialAgent is what the denials step needs from the shim's denial agent,
// in the terms of the denial contract alone, so the hooks never import the
// shim. The shim adapts its agent to it; tests substitute a recorder.
type DenialAgent interface {
	ListenerPath() string
	Register(containerID string, a denial.Attribution, mode, profile string, verdict denial.Verdict) error
	Unregister(containerID string)
}

// neverNotify are syscalls whose rules are never turned into
// SCMP_ACT_NOTIFY, whatever a profile says. runc refuses NOTIFY on write
// (its init reports the listener fd to the shim with it), and a notification
// from anything runc init or the Go runtime calls between loading the filter
// and handing the fd over would wait for an agent that has no fd yet: the
// container start hangs. The generated profile allows all of these
// unconditionally; this list keeps a future profile from breaking starts.
var neverNotify = map[string]bool{}

func init() {
	for _, n := range []string{
		"read", "write", "writev", "readv", "close", "close_range", "fcntl", "fcntl64",
		"futex", "futex_time64", "exit", "exit_group", "execve", "execveat",
		"setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
		"setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
		"setgroups", "setgroups32", "capget", "capset", "prctl", "getpid", "getppid",
		"gettid", "kill", "tkill", "tgkill", "chdir", "fchdir", "openat", "newfstatat",
		"fstat", "fstatat64", "statx", "faccessat", "faccessat2", "getdents64",
		"mmap", "mmap2", "munmap", "mprotect", "madvise", "brk", "rt_sigaction",
		"rt_sigprocmask", "rt_sigreturn", "sigaltstack", "sched_yield", "nanosleep",
		"clock_gettime", "clock_nanosleep", "epoll_pwait", "epoll_pwait2", "epoll_wait",
		"epoll_ctl", "pipe2", "getrandom", "restart_syscall", "set_robust_list", "rseq",
	} {
		neverNotify[n] = true
	}
}

// DenialsStep wires a container to the denial agent: it turns the explicit
// deny rules of the generated seccomp profile (SCMP_ACT_ERRNO/EPERM and
// SCMP_ACT_LOG) into SCMP_ACT_NOTIFY rules, points the profile's listener at
// the agent, and registers the container so each notification is answered
// as the original rule would have and attributed to the container.
//
// It runs last: it rewrites the finished profile. It does nothing when
// denials are disabled, the container has no seccomp profile, or the profile
// is not stockade's (no seccomp mode in the result): only a generated
// profile guarantees that its deny rules are safe to notify.
type DenialsStep struct {
	agent DenialAgent
}

var _ Step = (*DenialsStep)(nil)

// NewDenialsStep returns the step over the shim's agent; a nil agent (the
// shim's when denials are disabled) makes the step a no-op.
func NewDenialsStep(agent DenialAgent) *DenialsStep {
	return &DenialsStep{agent: agent}
}

// Name implements Step.
func (s *DenialsStep) Name() string { return "denials" }

// Apply implements Step. The Undo unregisters the container.
func (s *DenialsStep) Apply(ctx context.Context, c *Container) (Undo, error) {
	if s.agent == nil || c.Node == nil || !c.Node.Denials.Enabled {
		return nil, nil
	}
	if c.Spec == nil || c.Spec.Linux == nil || c.Spec.Linux.Seccomp == nil {
		return nil, nil
	}
	mode := c.Result.SeccompMode
	if mode != denial.ModeEnforce && mode != denial.ModeComplain {
		return nil, nil
	}
	sc := c.Spec.Linux.Seccomp
	if sc.ListenerPath != "" {
		// Not stockade's listener; a generated profile never names one.
		log.G(ctx).WithField("container_id", c.ID).Warn("seccomp profile already has a listener; denial streaming off")
		return nil, nil
	}
	rules, verdict, n := rewriteForNotify(sc.Syscalls)
	if n == 0 {
		return nil, nil
	}
	// Register before touching the spec: if the agent refuses, the profile
	// stays as generated and still denies; only the reporting is lost.
	attr := denialAttribution(ctx, c)
	if err := s.agent.Register(c.ID, attr, mode, c.Result.SeccompProfile, verdict); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("denial agent refused container; denial streaming off")
		return nil, nil
	}
	sc.Syscalls = rules
	sc.ListenerPath = s.agent.ListenerPath()
	sc.ListenerMetadata = denial.ListenerMetadata(mode, c.Result.SeccompProfile)
	c.Result.DenialListener = sc.ListenerPath
	id := c.ID
	return func(context.Context) error {
		s.agent.Unregister(id)
		return nil
	}, nil
}

// rewriteForNotify returns rules with every explicit deny rule turned into
// SCMP_ACT_NOTIFY (names in neverNotify keep their rule), the verdict that
// answers a notification as the original rule would have, and the number
// of syscall names now notified. in is not modified.
func rewriteForNotify(in []specs.LinuxSyscall) ([]specs.LinuxSyscall, denial.Verdict, int) {
	out := make([]specs.LinuxSyscall, 0, len(in)+1)
	// byName holds, per notified name, its original deny rules: evaluating
	// one name's few rules is cheap enough for every notification.
	byName := map[string]*specs.LinuxSeccomp{}
	n := 0
	for _, r := range in {
		if !seccomp.IsExplicitDeny(r) {
			out = append(out, r)
			continue
		}
		var notify, keep []string
		for _, name := range r.Names {
			if neverNotify[name] {
				keep = append(keep, name)
			} else {
				notify = append(notify, name)
			}
		}
		if len(keep) > 0 {
			k := r
			k.Names = keep
			out = append(out, k)
		}
		if len(notify) == 0 {
			continue
		}
		for _, name := range notify {
			p := byName[name]
			if p == nil {
				p = &specs.LinuxSeccomp{}
				byName[name] = p
				n++
			}
			orig := r
			orig.Names = []string{name}
			p.Syscalls = append(p.Syscalls, orig)
		}
		out = append(out, specs.LinuxSyscall{
			Names:  notify,
			Action: specs.ActNotify,
			Args:   slices.Clone(r.Args),
		})
	}
	verdict := func(name string, args [6]uint64) (syscall.Errno, bool) {
		p := byName[name]
		if p == nil {
			return 0, false
		}
		switch act, errno := seccomp.Evaluate(p, name, args); act {
		case specs.ActLog:
			return 0, true
		case specs.ActErrno:
			return syscall.Errno(errno), true
		default:
			// No deny rule of this name matches these arguments.
			return 0, false
		}
	}
	return out, verdict, n
}

// denialAttribution names the container for its records (denial.For).
func denialAttribution(ctx context.Context, c *Container) denial.Attribution {
	ns, _ := namespaces.Namespace(ctx)
	if c.ContainerdNamespace != "" {
		ns = c.ContainerdNamespace
	}
	return denial.For(c.Pod, ns, c.ID)
}
