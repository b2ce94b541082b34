package hooks

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

var testCaps = []string{"CAP_CHOWN", "CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"}

func seccompContainer(ns string, kube bool, sc *specs.LinuxSeccomp) *Container {
	spec := &specs.Spec{
		Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: testCaps, Effective: testCaps, Permitted: testCaps}},
	}
	if sc != nil {
		spec.Linux = &specs.Linux{Seccomp: sc}
	}
	return &Container{
		ID:   "c1",
		Spec: spec,
		Pod:  cri.Pod{Kubernetes: kube, Namespace: ns, Name: "web", Container: "app"},
		Node: config.Default(),
	}
}

// podAllowList allows what runc needs plus mkdir: a narrowing Localhost profile.
func podAllowList() *specs.LinuxSeccomp {
	names := strings.Fields(`read write close close_range fcntl futex exit exit_group execve
		setuid setgid setresuid setresgid setgroups setreuid setregid capget capset prctl getpid getppid gettid kill
		tkill tgkill chdir fchdir openat newfstatat fstat statx faccessat faccessat2 getdents64 mmap munmap
		mprotect madvise brk rt_sigaction rt_sigprocmask rt_sigreturn sigaltstack sched_yield nanosleep
		clock_gettime clock_nanosleep epoll_pwait epoll_ctl pipe2 getrandom clone mkdir`)
	return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}}}
}

func TestSeccompStep(t *testing.T) {
	unconfinedNode := config.Default()
	unconfinedNode.Seccomp.UnconfinedNamespaces = []string{"kube-system"}
	annotatedNode := config.Default()
	annotatedNode.Seccomp.AllowModeAnnotation = true
	for _, tc := range []struct {
		name        string
		c           *Container
		node        *config.Config
		modeAnn     string
		wantMode    string
		wantProfile string
		deniesMkdir bool
	}{
		{name: "no seccomp", c: seccompContainer("default", true, nil), wantMode: "enforce", wantProfile: SeccompBaseline},
		{name: "no node config", c: seccompContainer("default", true, nil), node: &config.Config{}, wantMode: "enforce", wantProfile: SeccompBaseline},
		{name: "unconfined namespace", c: seccompContainer("kube-system", true, nil), node: unconfinedNode, wantProfile: SeccompUnconfined},
		{name: "unconfined namespace, profile asked", c: seccompContainer("kube-system", true, podAllowList()), node: unconfinedNode, wantMode: "enforce", wantProfile: SeccompBaselineLocalhost, deniesMkdir: false},
		{name: "other namespace", c: seccompContainer("default", true, nil), node: unconfinedNode, wantMode: "enforce", wantProfile: SeccompBaseline},
		{name: "not kubernetes", c: seccompContainer("kube-system", false, nil), node: unconfinedNode, wantMode: "enforce", wantProfile: SeccompBaseline},
		{name: "empty profile is none", c: seccompContainer("default", true, &specs.LinuxSeccomp{}), wantMode: "enforce", wantProfile: SeccompBaseline},
		{name: "permissive pod profile", c: seccompContainer("default", true, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}), wantMode: "enforce", wantProfile: SeccompBaseline},
		{name: "narrowing pod profile", c: seccompContainer("default", true, podAllowList()), wantMode: "enforce", wantProfile: SeccompBaselineLocalhost},
		{name: "mode annotation", c: seccompContainer("default", true, nil), node: annotatedNode, modeAnn: "complain", wantMode: "complain", wantProfile: SeccompBaseline},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			if tc.node != nil {
				c.Node = tc.node
			}
			if tc.node == nil || tc.node.Seccomp.Mode == "" {
				// An empty config must not switch seccomp off.
				if tc.node != nil {
					c.Node = nil
				}
			}
			c.Annotations.SeccompMode = tc.modeAnn
			undo, err := NewSeccompStep().Apply(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if undo != nil {
				t.Error("the step holds nothing and should return no Undo")
			}
			if c.Result.SeccompMode != tc.wantMode || c.Result.SeccompProfile != tc.wantProfile {
				t.Errorf("result mode %q profile %q, want %q %q", c.Result.SeccompMode, c.Result.SeccompProfile, tc.wantMode, tc.wantProfile)
			}
			var sc *specs.LinuxSeccomp
			if c.Spec.Linux != nil {
				sc = c.Spec.Linux.Seccomp
			}
			if tc.wantProfile == SeccompUnconfined {
				if sc != nil {
					t.Error("unconfined container got a profile")
				}
				return
			}
			if sc == nil || sc.DefaultAction != specs.ActErrno {
				t.Fatalf("no generated profile: %+v", sc)
			}
			// io_uring is hard-denied: EPERM when enforcing; complain mode
			// lets it run but logs it with an explicit rule.
			act, errno := seccomp.Evaluate(sc, "io_uring_setup", [6]uint64{})
			switch tc.wantMode {
			case "complain":
				if act != specs.ActLog {
					t.Errorf("io_uring_setup in complain mode: %s, want %s", act, specs.ActLog)
				}
			default:
				if act != specs.ActErrno || errno != seccomp.DenyErrno {
					t.Errorf("io_uring_setup: %s/%d, want %s/%d", act, errno, specs.ActErrno, seccomp.DenyErrno)
				}
			}
			mkdir, _ := seccomp.Evaluate(sc, "mkdir", [6]uint64{})
			rmdir, _ := seccomp.Evaluate(sc, "rmdir", [6]uint64{})
			if mkdir != specs.ActAllow {
				t.Errorf("mkdir: %s", mkdir)
			}
			if narrowed := tc.wantProfile == SeccompBaselineLocalhost; narrowed != (rmdir != specs.ActAllow) {
				t.Errorf("rmdir: %s (narrowed %v)", rmdir, narrowed)
			}
		})
	}
}

func TestSeccompStepErrors(t *testing.T) {
	badPod := podAllowList()
	badPod.Syscalls[0].Names = append(badPod.Syscalls[0].Names, "mkdri")
	noFutex := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "write"}, Action: specs.ActAllow}}}
	for _, tc := range []struct {
		name    string
		c       *Container
		modeAnn string
		want    string
	}{
		{"mode annotation not allowed", seccompContainer("default", true, nil), "complain", AnnotationSeccompMode},
		{"unknown syscall", seccompContainer("default", true, badPod), "", "syscalls[0].names["},
		{"denies runc's needs", seccompContainer("default", true, noFutex), "", "must be allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.Annotations.SeccompMode = tc.modeAnn
			before := cloneSpec(t, c.Spec)
			_, err := NewSeccompStep().Apply(context.Background(), c)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument naming %q", err, tc.want)
			}
			if !reflect.DeepEqual(before, c.Spec) || !reflect.DeepEqual(c.Result, Result{}) {
				t.Error("a failed step changed the spec or the result")
			}
		})
	}
}

func cloneSpec(t *testing.T, s *specs.Spec) *specs.Spec {
	t.Helper()
	c := *s
	if s.Linux != nil {
		l := *s.Linux
		if s.Linux.Seccomp != nil {
			sc := *s.Linux.Seccomp
			l.Seccomp = &sc
		}
		c.Linux = &l
	}
	return &c
}

func TestSeccompStepArm64(t *testing.T) {
	c := seccompContainer("default", true, nil)
	if _, err := (&SeccompStep{GOARCH: "arm64"}).Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	// 32-bit ARM is a compat ABI: off unless the node turns it on.
	if got := c.Spec.Linux.Seccomp.Architectures; !reflect.DeepEqual(got, []specs.Arch{specs.ArchAARCH64}) {
		t.Errorf("architectures %v", got)
	}
}

func TestSeccompConfigValidation(t *testing.T) {
	_, err := config.Parse([]byte("[seccomp]\nunconfined_namespaces = [\"kube-system\", \"Kube_Bad\"]\n"))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "seccomp.unconfined_namespaces[1]") {
		t.Errorf("got %v, want an error naming seccomp.unconfined_namespaces[1]", err)
	}
	c, err := config.Parse([]byte("[seccomp]\nmode = \"complain\"\nallow_mode_annotation = true\nunconfined_namespaces = [\"kube-system\"]\n"))
	if err != nil || c.Seccomp.Mode != "complain" || !c.Seccomp.AllowModeAnnotation {
		t.Errorf("valid section: %+v %v", c, err)
	}
}
