package hooks

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// fakeDenialAgent records what the step tells the agent.
type fakeDenialAgent struct {
	refuse       error
	id, mode     string
	profile      string
	attr         denial.Attribution
	verdict      denial.Verdict
	registered   int
	unregistered []string
}

func (f *fakeDenialAgent) ListenerPath() string { return "/run/stockade/denials/x.sock" }

func (f *fakeDenialAgent) Register(id string, a denial.Attribution, mode, profile string, v denial.Verdict) error {
	if f.refuse != nil {
		return f.refuse
	}
	f.registered++
	f.id, f.attr, f.mode, f.profile, f.verdict = id, a, mode, profile, v
	return nil
}

func (f *fakeDenialAgent) Unregister(id string) { f.unregistered = append(f.unregistered, id) }

func denialsSpec(t *testing.T, mode seccomp.Mode) *specs.Spec {
	t.Helper()
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_NET_BIND_SERVICE", "CAP_KILL"}
	spec := &specs.Spec{
		Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
		Annotations: map[string]string{
			cri.AnnotationContainerType: cri.ContainerTypeContainer, cri.AnnotationSandboxID: "sb1",
			cri.AnnotationSandboxNamespace: "shop", cri.AnnotationSandboxName: "web-0", cri.AnnotationSandboxUID: "uid-1",
			cri.AnnotationContainerName: "app", cri.AnnotationImageName: "example/app:1",
		},
	}
	p, err := seccomp.Generate(spec, seccomp.Policy{Mode: mode, Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	spec.Linux = &specs.Linux{Seccomp: p}
	return spec
}

func denialsContainer(t *testing.T, mode string) *Container {
	spec := denialsSpec(t, seccomp.Mode(mode))
	return &Container{
		ID:     "c1",
		Spec:   spec,
		Pod:    cri.PodFromAnnotations("c1", spec.Annotations),
		Node:   config.Default(),
		Result: Result{SeccompMode: mode, SeccompProfile: "stockade-baseline"},
	}
}

func deepCopySeccomp(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	c := *p
	c.Syscalls = nil
	for _, r := range p.Syscalls {
		r.Names = slices.Clone(r.Names)
		r.Args = slices.Clone(r.Args)
		c.Syscalls = append(c.Syscalls, r)
	}
	return &c
}

func TestDenialsStepRewritesGeneratedProfile(t *testing.T) {
	for _, mode := range []string{"enforce", "complain"} {
		t.Run(mode, func(t *testing.T) {
			agent := &fakeDenialAgent{}
			c := denialsContainer(t, mode)
			orig := deepCopySeccomp(c.Spec.Linux.Seccomp)
			ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
			undo, err := NewDenialsStep(agent).Apply(ctx, c)
			if err != nil || undo == nil {
				t.Fatalf("Apply = %v, undo %v", err, undo != nil)
			}
			got := c.Spec.Linux.Seccomp
			if got.ListenerPath != agent.ListenerPath() || c.Result.DenialListener != got.ListenerPath {
				t.Errorf("listener %q / result %q", got.ListenerPath, c.Result.DenialListener)
			}
			if got.ListenerMetadata != denial.ListenerMetadata(mode, "stockade-baseline") {
				t.Errorf("metadata %q", got.ListenerMetadata)
			}
			if got.DefaultAction != orig.DefaultAction || !reflect.DeepEqual(got.DefaultErrnoRet, orig.DefaultErrnoRet) || !reflect.DeepEqual(got.Flags, orig.Flags) {
				t.Error("default action or flags changed")
			}
			notified := map[string]bool{}
			for _, r := range got.Syscalls {
				if seccomp.IsExplicitDeny(r) {
					for _, n := range r.Names {
						if !neverNotify[n] {
							t.Errorf("explicit deny rule for %s left unrewritten", n)
						}
					}
				}
				if r.Action == specs.ActNotify {
					for _, n := range r.Names {
						if neverNotify[n] {
							t.Errorf("%s notified: runc init may call it before the agent has the fd", n)
						}
						notified[n] = true
					}
				}
			}
			if len(notified) == 0 {
				t.Fatal("nothing rewritten")
			}
			for _, want := range []string{"mount", "ptrace", "kexec_load"} {
				if !notified[want] {
					t.Errorf("%s not notified", want)
				}
			}
			// Every notification is answered exactly as the original rule.
			checked := 0
			for _, r := range orig.Syscalls {
				if !seccomp.IsExplicitDeny(r) {
					continue
				}
				for _, name := range r.Names {
					if neverNotify[name] {
						continue
					}
					for _, args := range argsMatching(r.Args) {
						act, errno := seccomp.Evaluate(orig, name, args)
						e, ok := agent.verdict(name, args)
						want := syscall.Errno(errno)
						if act == specs.ActLog {
							want = 0
						}
						if !ok || e != want {
							t.Errorf("%s%v: verdict %v/%v, original %s/%d", name, args, e, ok, act, errno)
						}
						checked++
					}
				}
			}
			if _, ok := agent.verdict("write", [6]uint64{}); ok {
				t.Error("verdict claims a rule for write")
			}
			t.Logf("%d names notified, %d verdicts checked", len(notified), checked)
			if agent.id != "c1" || agent.mode != mode || agent.profile != "stockade-baseline" ||
				agent.attr != (denial.Attribution{Namespace: "shop", Pod: "web-0", PodUID: "uid-1", Container: "app", Image: "example/app:1"}) {
				t.Errorf("registered %+v", agent)
			}
			if _, err := seccomp.Compile(got, specs.ArchX86_64); err != nil && !errors.Is(err, seccomp.ErrCompileUnsupported) {
				t.Errorf("libseccomp rejects the rewritten profile: %v", err)
			}
			if err := undo(ctx); err != nil || !slices.Equal(agent.unregistered, []string{"c1"}) {
				t.Errorf("undo: %v, unregistered %v", err, agent.unregistered)
			}
		})
	}
}

// argsMatching returns argument vectors that satisfy conds (a rule without
// conditions matches anything, so zeros do).
func argsMatching(conds []specs.LinuxSeccompArg) [][6]uint64 {
	var a [6]uint64
	for _, c := range conds {
		switch c.Op {
		case specs.OpEqualTo, specs.OpGreaterEqual, specs.OpLessEqual:
			a[c.Index] = c.Value
		case specs.OpMaskedEqual:
			a[c.Index] = c.ValueTwo
		case specs.OpGreaterThan:
			a[c.Index] = c.Value + 1
		case specs.OpLessThan:
			a[c.Index] = c.Value - 1
		case specs.OpNotEqual:
			a[c.Index] = c.Value + 1
		}
	}
	return [][6]uint64{a}
}

func TestDenialsStepSplitsNeverNotify(t *testing.T) {
	eperm := uint(syscall.EPERM)
	in := []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActAllow},
		{Names: []string{"write", "mount", "futex"}, Action: specs.ActErrno, ErrnoRet: &eperm},
		{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: ptrUint(uint(syscall.ENOSYS))},
		{Names: []string{"ptrace"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 16, Op: specs.OpEqualTo}}},
	}
	out, verdict, n := rewriteForNotify(in)
	want := []specs.LinuxSyscall{
		in[0],
		{Names: []string{"write", "futex"}, Action: specs.ActErrno, ErrnoRet: &eperm},
		{Names: []string{"mount"}, Action: specs.ActNotify},
		in[2],
		{Names: []string{"ptrace"}, Action: specs.ActNotify, Args: in[3].Args},
	}
	if n != 2 || !reflect.DeepEqual(out, want) {
		t.Errorf("rewrite = %d %+v\nwant %+v", n, out, want)
	}
	if !reflect.DeepEqual(in[1].Names, []string{"write", "mount", "futex"}) {
		t.Error("input modified")
	}
	if e, ok := verdict("ptrace", [6]uint64{16}); !ok || e != 0 {
		t.Errorf("ptrace(16) = %v %v, want allow (LOG)", e, ok)
	}
	if _, ok := verdict("ptrace", [6]uint64{0}); ok {
		t.Error("ptrace(0) matched no deny rule but verdict claims one")
	}
	if e, ok := verdict("mount", [6]uint64{}); !ok || e != syscall.EPERM {
		t.Errorf("mount = %v %v", e, ok)
	}
}

func ptrUint(u uint) *uint { return &u }

func TestDenialsStepNoOps(t *testing.T) {
	ctx := context.Background()
	for name, mut := range map[string]func(c *Container, a **fakeDenialAgent){
		"disabled":      func(c *Container, _ **fakeDenialAgent) { c.Node.Denials.Enabled = false },
		"no seccomp":    func(c *Container, _ **fakeDenialAgent) { c.Spec.Linux.Seccomp = nil },
		"no linux":      func(c *Container, _ **fakeDenialAgent) { c.Spec.Linux = nil },
		"not generated": func(c *Container, _ **fakeDenialAgent) { c.Result.SeccompMode = "" },
		"no agent":      func(_ *Container, a **fakeDenialAgent) { *a = nil },
		"foreign listener": func(c *Container, _ **fakeDenialAgent) {
			c.Spec.Linux.Seccomp.ListenerPath = "/run/other.sock"
		},
		"agent refuses": func(_ *Container, a **fakeDenialAgent) { (*a).refuse = errors.New("denial agent closed") },
		"nothing to notify": func(c *Container, _ **fakeDenialAgent) {
			c.Spec.Linux.Seccomp.Syscalls = []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := denialsContainer(t, "enforce")
			agent := &fakeDenialAgent{}
			mut(c, &agent)
			var before *specs.LinuxSeccomp
			if c.Spec.Linux != nil && c.Spec.Linux.Seccomp != nil {
				before = deepCopySeccomp(c.Spec.Linux.Seccomp)
			}
			var step *DenialsStep
			if agent == nil {
				step = NewDenialsStep(nil)
			} else {
				step = NewDenialsStep(agent)
			}
			undo, err := step.Apply(ctx, c)
			if err != nil || undo != nil {
				t.Fatalf("Apply = %v, undo %v; want a silent no-op", err, undo != nil)
			}
			if before != nil && !reflect.DeepEqual(before, c.Spec.Linux.Seccomp) {
				t.Error("profile changed")
			}
			if c.Result.DenialListener != "" || (agent != nil && agent.registered != 0) {
				t.Error("container wired although the step is a no-op")
			}
		})
	}
}

func TestDenialAttribution(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "builds")
	c := &Container{ID: "solo", Pod: cri.PodFromAnnotations("solo", nil)}
	if a := denialAttribution(ctx, c); a != (denial.Attribution{Namespace: "builds", Pod: "solo", PodUID: "solo", Container: "solo"}) {
		t.Errorf("standalone = %+v", a)
	}
	if a := denialAttribution(context.Background(), c); a.Namespace != "default" {
		t.Errorf("standalone without namespace = %+v", a)
	}
	sb := &Container{ID: "sb1", Pod: cri.PodFromAnnotations("sb1", map[string]string{
		cri.AnnotationContainerType: cri.ContainerTypeSandbox, cri.AnnotationSandboxNamespace: "shop",
		cri.AnnotationSandboxName: "web-0", cri.AnnotationSandboxUID: "uid-1",
	})}
	if a := denialAttribution(ctx, sb); a != (denial.Attribution{Namespace: "shop", Pod: "web-0", PodUID: "uid-1", Container: "POD"}) {
		t.Errorf("sandbox = %+v", a)
	}
}
