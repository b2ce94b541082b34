package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/node/idalloc"
	"github.com/stockade-dev/stockade/profiles/userns"
)

const (
	testSandboxID  = "sb0123"
	testNS         = "k8s.io"
	testKey        = testNS + "@" + testSandboxID
	testSandboxPid = 4242
	poolStart      = 1 << 31
)

// usernsEnv is a step over a real allocator in a temp dir, with the system
// seams replaced: a fake /proc, an idmap probe, and a recorder of host-side
// sysctl writes.
type usernsEnv struct {
	step    *UserNSStep
	alloc   *idalloc.Allocator
	node    *config.Config
	proc    string
	written map[string]map[string]string
	failNet error
}

func newUsernsEnv(t *testing.T, ranges int) *usernsEnv {
	t.Helper()
	node := config.Default()
	node.StateDir = t.TempDir()
	alloc, err := idalloc.NewAllocator(node.UserNSStateDir(),
		userns.Pool{Start: poolStart, Size: uint32(ranges) * userns.RangeSize, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	owner, err := idalloc.CurrentOwner()
	if err != nil {
		t.Fatal(err)
	}
	e := &usernsEnv{step: NewUserNSStep(alloc, owner), alloc: alloc, node: node, proc: t.TempDir(), written: map[string]map[string]string{}}
	e.step.procRoot = e.proc
	e.step.idmapSupported = func(p string) (bool, string, error) {
		if strings.HasPrefix(p, "/nfs/") {
			return false, "nfs", nil
		}
		return true, "ext4", nil
	}
	e.step.writeNetSysctls = func(netns string, kv map[string]string) error {
		if e.failNet != nil {
			return e.failNet
		}
		e.written[netns] = kv
		return nil
	}
	return e
}

// setSandboxMaps writes the fake /proc/<pid>/{uid,gid}_map of the sandbox.
func (e *usernsEnv) setSandboxMaps(t *testing.T, line string) {
	t.Helper()
	dir := filepath.Join(e.proc, fmt.Sprint(testSandboxPid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// criSpec is shaped like containerd CRI's specs for a pod's sandbox or app
// container.
func criSpec(sandbox bool) *specs.Spec {
	typ, netns := cri.ContainerTypeContainer, fmt.Sprintf("/proc/%d/ns/net", testSandboxPid)
	nss := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", testSandboxPid)},
		{Type: specs.IPCNamespace, Path: fmt.Sprintf("/proc/%d/ns/ipc", testSandboxPid)},
		{Type: specs.UTSNamespace, Path: fmt.Sprintf("/proc/%d/ns/uts", testSandboxPid)},
		{Type: specs.MountNamespace},
	}
	if sandbox {
		typ, netns = cri.ContainerTypeSandbox, "/var/run/netns/cni-1234"
		nss = []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}}
	}
	nss = append(nss, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns})
	s := &specs.Spec{
		Annotations: map[string]string{
			cri.AnnotationContainerType:    typ,
			cri.AnnotationSandboxID:        testSandboxID,
			cri.AnnotationSandboxNamespace: "shop",
			cri.AnnotationSandboxName:      "web",
		},
		Process: &specs.Process{
			User:         specs.User{UID: 65535, GID: 65535},
			Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_NET_BIND_SERVICE"}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/dev/shm", Type: "bind", Source: "/run/containerd/sandboxes/sb/shm", Options: []string{"rbind", "ro"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "/var/lib/containerd/sandboxes/sb/resolv.conf", Options: []string{"rbind", "ro"}},
			{Destination: "/data", Type: "bind", Source: "/var/lib/kubelet/pods/uid/volumes/data", Options: []string{"rbind", "rw"}},
			{Destination: "/nfs", Type: "bind", Source: "/nfs/share", Options: []string{"rbind"}},
		},
		Linux: &specs.Linux{
			Namespaces:  nss,
			MaskedPaths: []string{"/proc/kcore"},
		},
	}
	if sandbox {
		s.Linux.Sysctl = map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "0",
			"net.ipv4.ping_group_range":           "0 2147483647",
			"kernel.shm_rmid_forced":              "1",
		}
	}
	return s
}

func (e *usernsEnv) container(s *specs.Spec, id string, sandboxPid int) *Container {
	return &Container{ID: id, ContainerdNamespace: testNS, Spec: s, Pod: cri.PodFromAnnotations(id, s.Annotations), Node: e.node, SandboxPid: sandboxPid}
}

func podMap(slot int) []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: poolStart + uint32(slot)*userns.RangeSize, Size: userns.RangeSize}}
}

func mountAt(t *testing.T, s *specs.Spec, dst string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m
		}
	}
	t.Fatalf("no mount at %s", dst)
	return specs.Mount{}
}

func TestUsernsSandbox(t *testing.T) {
	ctx := context.Background()
	e := newUsernsEnv(t, 4)
	c := e.container(criSpec(true), testSandboxID, 0)
	undo, err := e.step.Apply(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := podMap(0)
	s := c.Spec
	ns, ok := namespaceOf(s, specs.UserNamespace)
	if !ok || ns.Path != "" {
		t.Fatalf("user namespace = %+v %v, want a new one", ns, ok)
	}
	if !slices.Equal(s.Linux.UIDMappings, want) || !slices.Equal(s.Linux.GIDMappings, want) {
		t.Errorf("spec maps %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	if !slices.Equal(c.Result.UIDMap, want) || !slices.Equal(c.Result.GIDMap, want) {
		t.Errorf("result maps %v %v", c.Result.UIDMap, c.Result.GIDMap)
	}
	l, err := e.alloc.Lookup(testKey)
	if err != nil || l.Start != poolStart {
		t.Fatalf("lease %+v, %v", l, err)
	}

	// Volumes are idmapped; kernel filesystems and unidmappable ones not.
	for _, dst := range []string{"/etc/resolv.conf", "/data"} {
		m := mountAt(t, s, dst)
		if !slices.Equal(m.UIDMappings, want) || !slices.Equal(m.GIDMappings, want) || !slices.Contains(m.Options, "idmap") {
			t.Errorf("%s not idmapped: %+v", dst, m)
		}
	}
	for _, dst := range []string{"/dev/shm", "/nfs", "/proc"} {
		if m := mountAt(t, s, dst); m.UIDMappings != nil || slices.Contains(m.Options, "idmap") {
			t.Errorf("%s idmapped: %+v", dst, m)
		}
	}
	// The CRI netns belongs to the host userns: /sys becomes a bind and the
	// net sysctls are written host-side, ping range translated to host GIDs.
	sys := mountAt(t, s, "/sys")
	if sys.Type != "bind" || sys.Source != "/sys" || !slices.Contains(sys.Options, "rro") || !slices.Contains(sys.Options, "nosuid") {
		t.Errorf("/sys = %+v", sys)
	}
	net := e.written["/var/run/netns/cni-1234"]
	if net["net.ipv4.ip_unprivileged_port_start"] != "0" || net["net.ipv4.ping_group_range"] != "2147483648 2147549183" || len(net) != 2 {
		t.Errorf("host-side sysctls %v", net)
	}
	if len(s.Linux.Sysctl) != 1 || s.Linux.Sysctl["kernel.shm_rmid_forced"] != "1" {
		t.Errorf("sysctls left for runc: %v", s.Linux.Sysctl)
	}

	// Undo (rollback of a failed create) frees the range, once.
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if err := undo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.alloc.Lookup(testKey); !errors.Is(err, userns.ErrNotFound) {
		t.Fatalf("lease after undo: %v", err)
	}
}

func TestUsernsStandaloneContainer(t *testing.T) {
	e := newUsernsEnv(t, 4)
	s := criSpec(true)
	s.Annotations = nil // plain containerd client: its own pod
	for i := range s.Linux.Namespaces {
		if s.Linux.Namespaces[i].Type == specs.NetworkNamespace {
			s.Linux.Namespaces[i].Path = "" // runc makes it, inside the new userns
		}
	}
	c := e.container(s, "solo", 0)
	if _, err := e.step.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := e.alloc.Lookup(testNS + "@solo"); err != nil {
		t.Fatalf("standalone container has no lease: %v", err)
	}
	if sys := mountAt(t, s, "/sys"); sys.Type != "sysfs" {
		t.Errorf("/sys replaced for an own netns: %+v", sys)
	}
	if len(e.written) != 0 || len(s.Linux.Sysctl) != 3 {
		t.Errorf("sysctls moved for an own netns: %v / %v", e.written, s.Linux.Sysctl)
	}
}

func TestUsernsMemberJoinsSandbox(t *testing.T) {
	ctx := context.Background()
	e := newUsernsEnv(t, 4)
	// Another pod first, so the pod's range is not the first one.
	if _, err := e.alloc.Allocate(testNS+"@other", e.step.owner); err != nil {
		t.Fatal(err)
	}
	if _, err := e.step.Apply(ctx, e.container(criSpec(true), testSandboxID, 0)); err != nil {
		t.Fatal(err)
	}
	e.setSandboxMaps(t, fmt.Sprintf("0 %d 65536", poolStart+userns.RangeSize))

	s := criSpec(false)
	s.Linux.UIDMappings = nil
	c := e.container(s, "app", testSandboxPid)
	undo, err := e.step.Apply(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if undo != nil {
		t.Error("an app container must not release the pod's range")
	}
	ns, _ := namespaceOf(s, specs.UserNamespace)
	if ns.Path != fmt.Sprintf("/proc/%d/ns/user", testSandboxPid) {
		t.Errorf("user namespace %+v, want the sandbox's", ns)
	}
	if s.Linux.UIDMappings != nil || s.Linux.GIDMappings != nil {
		t.Error("spec joins by path and also carries mappings (runc 1.5 warns, later versions refuse)")
	}
	want := podMap(1)
	if !slices.Equal(c.Result.UIDMap, want) || !slices.Equal(c.Result.GIDMap, want) {
		t.Errorf("result maps %v", c.Result.UIDMap)
	}
	// The volume takes the joined namespace's mapping: "idmap" without
	// mappings of its own (libcontainer then forks no process to make a
	// namespace with them).
	if m := mountAt(t, s, "/data"); !slices.Contains(m.Options, "idmap") || m.UIDMappings != nil || m.GIDMappings != nil {
		t.Errorf("volume of app container not idmapped with the joined namespace's mapping: %+v", m)
	}
	if sys := mountAt(t, s, "/sys"); sys.Type != "bind" {
		t.Errorf("/sys of app container in the pod netns: %+v", sys)
	}
}

func TestUsernsMemberErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		lease   bool
		maps    string
		pid     int
		want    string
		noRemap bool
		own     string
	}{
		{name: "exempt sandbox", maps: "0 0 4294967295", pid: testSandboxPid, noRemap: true},
		{name: "exempt sandbox, nested shim", maps: "0 100000 1000000", own: "0 100000 1000000", pid: testSandboxPid, noRemap: true},
		{name: "no lease", maps: "0 2147483648 65536", pid: testSandboxPid, want: "holds no lease"},
		{name: "mismatch", lease: true, maps: "0 3000000000 65536", pid: testSandboxPid, want: "but its lease is"},
		{name: "sandbox gone", lease: true, pid: testSandboxPid, want: "read user namespace of sandbox"},
		{name: "no sandbox pid", lease: true, pid: 0, want: "not running in this shim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUsernsEnv(t, 4)
			if tc.lease {
				if _, err := e.alloc.Allocate(testKey, e.step.owner); err != nil {
					t.Fatal(err)
				}
			}
			if tc.maps != "" {
				e.setSandboxMaps(t, tc.maps)
			}
			if tc.own != "" {
				dir := filepath.Join(e.proc, fmt.Sprint(os.Getpid()))
				os.MkdirAll(dir, 0o755)
				os.WriteFile(filepath.Join(dir, "uid_map"), []byte(tc.own), 0o644)
				os.WriteFile(filepath.Join(dir, "gid_map"), []byte(tc.own), 0o644)
			}
			s := criSpec(false)
			c := e.container(s, "app", tc.pid)
			_, err := e.step.Apply(ctx, c)
			if tc.noRemap {
				if _, ok := namespaceOf(s, specs.UserNamespace); err != nil || ok || c.Result.UIDMap != nil {
					t.Fatalf("member of an exempt sandbox remapped: %v", err)
				}
				return
			}
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want FailedPrecondition mentioning %q", err, tc.want)
			}
			if _, ok := namespaceOf(s, specs.UserNamespace); ok {
				t.Error("spec changed on error")
			}
		})
	}
}

func TestUsernsKeepsKubeletUserNamespace(t *testing.T) {
	e := newUsernsEnv(t, 4)
	s := criSpec(true)
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536 * 7, Size: 65536}}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/containerd/userns/sb"})
	s.Linux.UIDMappings, s.Linux.GIDMappings = m, m
	before := len(s.Mounts)
	c := e.container(s, testSandboxID, 0)
	undo, err := e.step.Apply(context.Background(), c)
	if err != nil || undo != nil {
		t.Fatalf("Apply = %v", err)
	}
	if !slices.Equal(c.Result.UIDMap, m) || !slices.Equal(c.Result.GIDMap, m) {
		t.Errorf("result %v", c.Result.UIDMap)
	}
	if len(s.Mounts) != before || mountAt(t, s, "/data").UIDMappings != nil || len(e.written) != 0 {
		t.Error("spec of a kubelet userns pod rewritten")
	}
	if leases, _ := e.alloc.Leases(); len(leases) != 0 {
		t.Errorf("lease taken for a kubelet userns pod: %v", leases)
	}
}

func TestUsernsDisabled(t *testing.T) {
	e := newUsernsEnv(t, 4)
	e.node.UserNS.Enabled = false
	s := criSpec(true)
	c := e.container(s, testSandboxID, 0)
	if undo, err := e.step.Apply(context.Background(), c); err != nil || undo != nil {
		t.Fatal(err)
	}
	if _, ok := namespaceOf(s, specs.UserNamespace); ok || c.Result.UIDMap != nil {
		t.Error("disabled step remapped")
	}
}

func TestUsernsHostNamespacePods(t *testing.T) {
	dropNS := func(t specs.LinuxNamespaceType) func(*specs.Spec) {
		return func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		}
	}
	for _, tc := range []struct {
		name, reason string
		edit         func(*specs.Spec)
	}{
		{"host network", "host network namespace", dropNS(specs.NetworkNamespace)},
		{"host pid", "host PID namespace", dropNS(specs.PIDNamespace)},
		{"host ipc", "host IPC namespace", dropNS(specs.IPCNamespace)},
		{"privileged sandbox", "writable /sys", func(s *specs.Spec) { s.Mounts[2].Options = []string{"nosuid", "rw"} }},
		{"privileged container", "CAP_SYS_ADMIN without masked paths", func(s *specs.Spec) {
			s.Linux.MaskedPaths = nil
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newUsernsEnv(t, 4)
			s := criSpec(true)
			tc.edit(s)
			_, err := e.step.Apply(ctx, e.container(s, testSandboxID, 0))
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), tc.reason) ||
				!strings.Contains(err.Error(), "shop/web") || !strings.Contains(err.Error(), "userns.exempt_namespaces") {
				t.Fatalf("refuse: %v", err)
			}
			if leases, _ := e.alloc.Leases(); len(leases) != 0 {
				t.Fatal("refused pod holds a lease")
			}

			// Exempt by namespace list, then by policy; other namespaces stay refused.
			e.node.UserNS.ExemptNamespaces = []string{"kube-system", "shop"}
			if _, err := e.step.Apply(ctx, e.container(s, testSandboxID, 0)); err != nil {
				t.Fatalf("exempt namespace: %v", err)
			}
			e.node.UserNS.ExemptNamespaces = []string{"kube-system"}
			if _, err := e.step.Apply(ctx, e.container(s, testSandboxID, 0)); err == nil {
				t.Fatal("pod outside the exempt namespaces ran")
			}
			e.node.UserNS.HostNamespacePods = config.HostNamespacePodsExempt
			c := e.container(s, testSandboxID, 0)
			if _, err := e.step.Apply(ctx, c); err != nil || c.Result.UIDMap != nil {
				t.Fatalf("exempt policy: %v", err)
			}
			if _, ok := namespaceOf(s, specs.UserNamespace); ok {
				t.Error("exempt pod remapped")
			}
		})
	}
}

// usernsFailStep fails, to drive the pipeline's rollback.
type usernsFailStep struct{}

func (usernsFailStep) Name() string { return "later" }
func (usernsFailStep) Apply(context.Context, *Container) (Undo, error) {
	return nil, errors.New("later step failed")
}

func TestUsernsNothingLeakedOnFailure(t *testing.T) {
	ctx := context.Background()

	t.Run("later step fails", func(t *testing.T) {
		e := newUsernsEnv(t, 4)
		_, err := Pipeline{e.step, usernsFailStep{}}.Apply(ctx, e.container(criSpec(true), testSandboxID, 0))
		if err == nil {
			t.Fatal("pipeline succeeded")
		}
		if leases, _ := e.alloc.Leases(); len(leases) != 0 {
			t.Fatalf("rollback left leases: %v", leases)
		}
	})

	t.Run("host-side sysctls fail", func(t *testing.T) {
		e := newUsernsEnv(t, 4)
		e.failNet = errors.New("setns: operation not permitted")
		s := criSpec(true)
		_, err := e.step.Apply(ctx, e.container(s, testSandboxID, 0))
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "setns") {
			t.Fatalf("err = %v", err)
		}
		if leases, _ := e.alloc.Leases(); len(leases) != 0 {
			t.Fatal("failed remap kept its lease")
		}
		if _, ok := namespaceOf(s, specs.UserNamespace); ok || len(s.Linux.Sysctl) != 3 || mountAt(t, s, "/sys").Type != "sysfs" {
			t.Error("spec changed on error")
		}
	})

	t.Run("pool exhausted", func(t *testing.T) {
		e := newUsernsEnv(t, 1)
		if _, err := e.alloc.Allocate(testNS+"@first", e.step.owner); err != nil {
			t.Fatal(err)
		}
		_, err := Pipeline{e.step}.Apply(ctx, e.container(criSpec(true), testSandboxID, 0))
		if !errdefs.IsResourceExhausted(err) || errdefs.Resolve(err) != errdefs.ErrResourceExhausted ||
			!strings.HasPrefix(err.Error(), "userns: ") || !strings.Contains(err.Error(), "(test)") {
			t.Fatalf("err = %v (resolves to %v)", err, errdefs.Resolve(err))
		}
	})

	t.Run("user outside the range", func(t *testing.T) {
		e := newUsernsEnv(t, 4)
		s := criSpec(true)
		s.Process.User.AdditionalGids = []uint32{70000}
		_, err := e.step.Apply(ctx, e.container(s, testSandboxID, 0))
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "ID 70000") {
			t.Fatalf("err = %v", err)
		}
		if leases, _ := e.alloc.Leases(); len(leases) != 0 {
			t.Fatal("refused container holds a lease")
		}
	})
}

func TestUsernsReleaseAndReclaim(t *testing.T) {
	ctx := context.Background()
	e := newUsernsEnv(t, 4)
	if _, err := e.step.Apply(ctx, e.container(criSpec(true), testSandboxID, 0)); err != nil {
		t.Fatal(err)
	}
	if err := e.step.Release(ctx, testNS, testSandboxID); err != nil {
		t.Fatal(err)
	}
	if err := e.step.Release(ctx, testNS, testSandboxID); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, err := e.alloc.Allocate(testNS+"@dead-pod", idalloc.Owner{Pid: 1 << 30, StartTime: 1}); err != nil {
		t.Fatal(err)
	}
	released, err := e.step.Reclaim(ctx, idalloc.OwnerAlive)
	if err != nil || len(released) != 1 || released[0].Key != testNS+"@dead-pod" {
		t.Fatalf("Reclaim = %v, %v", released, err)
	}

	// "shim delete" releases without a pipeline.
	if _, err := e.alloc.Allocate(testNS+"@crashed", e.step.owner); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseUserNSIn(ctx, e.node, testNS, "crashed"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.alloc.Lookup(testNS + "@crashed"); !errors.Is(err, userns.ErrNotFound) {
		t.Fatalf("lease after ReleaseUserNSIn: %v", err)
	}
}

func TestNewUserNSStepFromConfig(t *testing.T) {
	node := config.Default()
	node.StateDir = t.TempDir()
	node.UserNS.Pool = "3000000000+655360" // independent of this host's /etc/subuid
	s, err := NewUserNSStepFromConfig(node)
	if err != nil {
		t.Skipf("host subordinate ID files conflict with the test pool: %v", err)
	}
	if s.alloc == nil || s.owner.Pid != os.Getpid() {
		t.Fatalf("step %+v", s)
	}
	if _, err := os.Stat(filepath.Join(node.StateDir, "userns", "leases")); err != nil {
		t.Fatalf("lease directory: %v", err)
	}
	node.UserNS.Enabled = false
	if s, err = NewUserNSStepFromConfig(node); err != nil || s.alloc != nil {
		t.Fatalf("disabled: %+v %v", s, err)
	}
}

func TestHostGroupRange(t *testing.T) {
	m := podMap(0)
	for in, want := range map[string]string{
		"0 2147483647": "2147483648 2147549183",
		"100 200":      "2147483748 2147483848",
		"65536 70000":  "1 0",
		"1 0":          "1 0",
	} {
		if got, err := hostGroupRange(in, m); err != nil || got != want {
			t.Errorf("hostGroupRange(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := hostGroupRange("0", m); !errdefs.IsInvalidArgument(err) {
		t.Errorf("malformed range: %v", err)
	}
}

func TestUsernsConfig(t *testing.T) {
	c, err := config.Parse([]byte("state_dir = \"/var/lib/x\"\n[userns]\npool = \"2147483648-2214592511\"\n" +
		"host_namespace_pods = \"exempt\"\nexempt_namespaces = [\"kube-system\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.UserNSStateDir() != "/var/lib/x/userns" || !c.UserNS.Exempt("anything") {
		t.Errorf("parsed %+v", c.UserNS)
	}
	if d := config.Default(); !d.UserNS.Enabled || d.UserNS.HostNamespacePods != "refuse" || d.UserNS.Exempt("kube-system") {
		t.Errorf("defaults %+v", d.UserNS)
	}
	for doc, key := range map[string]string{
		"[userns]\npool = \"10-20\"\n":                      "userns.pool",
		"[userns]\npool = \"lots\"\n":                       "userns.pool",
		"[userns]\nstate_dir = \"rel\"\n":                   "userns.state_dir",
		"[userns]\nhost_namespace_pods = \"allow\"\n":       "userns.host_namespace_pods",
		"[userns]\nexempt_namespaces = [\"Kube_System\"]\n": "userns.exempt_namespaces",
	} {
		_, err := config.Parse([]byte(doc))
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "key "+key) {
			t.Errorf("Parse(%q) = %v, want an error naming key %s", doc, err, key)
		}
	}
}
