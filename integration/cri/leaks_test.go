package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

// footprint is everything of one running pod that must be gone after
// RemovePodSandbox, recorded while the pod runs.
type footprint struct {
	Name         string
	IDs          []string // sandbox first, then containers
	Pids         []int    // init pids of the sandbox and the containers
	Shim         shimProc
	ShimSocket   string
	NetNS        string // bind-mounted network namespace file
	PodIP        string
	CgroupParent string
}

// capture records a pod's footprint; every container must be running.
func capture(t testing.TB, p *pod) footprint {
	t.Helper()
	st, info, err := p.sandboxStatus()
	if err != nil {
		t.Fatal(err)
	}
	fp := footprint{
		Name:         p.Config.Metadata.Name,
		IDs:          []string{p.ID},
		Pids:         []int{info.Pid},
		PodIP:        st.GetNetwork().GetIp(),
		CgroupParent: p.Config.Linux.CgroupParent,
	}
	if info.RuntimeSpec != nil && info.RuntimeSpec.Linux != nil {
		for _, ns := range info.RuntimeSpec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				fp.NetNS = ns.Path
			}
		}
	}
	if fp.Shim, err = shimOf(p.env, info.Pid); err != nil {
		t.Fatalf("pod %s sandbox: %v", fp.Name, err)
	}
	if fp.ShimSocket, err = shimSocket(p.env, p.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range p.Containers() {
		_, ci, err := p.status(id)
		if err != nil {
			t.Fatal(err)
		}
		fp.IDs = append(fp.IDs, id)
		fp.Pids = append(fp.Pids, ci.Pid)
	}
	return fp
}

// findLeaks lists what is left of a removed pod on the host and in
// containerd.
func findLeaks(env *harness.Env, fp footprint) []string {
	var leaks []string
	add := func(format string, args ...any) { leaks = append(leaks, fmt.Sprintf(format, args...)) }
	exists := func(path string) bool { _, err := os.Lstat(path); return err == nil }

	ctx := namespaces.WithNamespace(context.Background(), harness.CRINamespace)
	mounts, _ := mountPoints(env.Dir)
	for _, id := range fp.IDs {
		short := id[:12]
		for _, d := range []string{
			bundleDir(env, id),
			runtimeStateDir(env, id),
			filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "sandboxes", id),
			filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "containers", id),
			filepath.Join(env.Dir, "root", "io.containerd.grpc.v1.cri", "sandboxes", id),
			filepath.Join(env.Dir, "root", "io.containerd.grpc.v1.cri", "containers", id),
		} {
			if exists(d) {
				add("directory %s", d)
			}
		}
		if _, err := env.Client.ContainerService().Get(ctx, id); !errdefs.IsNotFound(err) {
			add("containerd container %s (%v)", short, err)
		}
		if _, err := env.Client.SnapshotService(harness.Snapshotter).Stat(ctx, id); !errdefs.IsNotFound(err) {
			add("snapshot %s (%v)", short, err)
		}
		for _, m := range mounts {
			if strings.Contains(m, id) {
				add("mount %s", m)
			}
		}
		for _, pid := range processesIn(id) {
			add("process %d %q in cgroup of %s", pid, readArgv(pid), short)
		}
		for _, root := range cgroupMounts() {
			if d := filepath.Join(root, fp.CgroupParent, id); exists(d) {
				add("cgroup %s", d)
			}
		}
	}
	if slices.Contains(mounts, fp.NetNS) {
		add("netns mount %s", fp.NetNS)
	}
	if fp.NetNS != "" && exists(fp.NetNS) {
		add("netns file %s", fp.NetNS)
	}
	if argv := readArgv(fp.Shim.Pid); argv != nil && argValue(argv, "address") == env.Address {
		add("shim process %d (%s)", fp.Shim.Pid, fp.Shim.Binary)
	}
	if fp.ShimSocket != "" && exists(fp.ShimSocket) {
		add("shim socket %s", fp.ShimSocket)
	}
	if fp.PodIP != "" {
		if lease, _ := filepath.Glob(filepath.Join(env.Dir, "cni", "ipam", "*", fp.PodIP)); len(lease) > 0 {
			add("IP lease %s", lease[0])
		}
	}
	return leaks
}

// assertGone waits for every footprint to vanish (shims exit and CNI
// releases asynchronously), then removes the pods' cgroups the way the
// kubelet does, which fails while any process is left in them.
func assertGone(t testing.TB, env *harness.Env, fps ...footprint) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var leaks []string
		for _, fp := range fps {
			for _, l := range findLeaks(env, fp) {
				leaks = append(leaks, fp.Name+": "+l)
			}
		}
		if len(leaks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, fp := range fps {
				reap(env, fp)
			}
			t.Fatalf("left behind after the pods were removed:\n  %s", strings.Join(leaks, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, fp := range fps {
		if err := removeCgroup(fp.CgroupParent); err != nil {
			t.Errorf("pod %s: remove pod cgroup: %v", fp.Name, err)
		}
	}
}

// reap removes what a failed teardown left of a pod, so that one failing
// test does not leave processes, cgroups or state on the machine for the
// next run (the harness only kills processes it can tie to its containerd
// by argv or root directory, and a pivoted container's root reads "/").
func reap(env *harness.Env, fp footprint) {
	for _, id := range fp.IDs {
		for _, pid := range processesIn(id) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
	_ = removeCgroup(fp.CgroupParent)
	for _, id := range fp.IDs {
		_ = os.RemoveAll(runtimeStateDir(env, id))
	}
}

// hostState is a snapshot of what a failed pod creation could leave behind
// without any ID to look for: used when RunPodSandbox itself fails.
type hostState struct {
	Shims      map[int]shimProc
	Mounts     []string
	Bundles    []string
	Containers []string // containerd containers in the CRI namespace
	Leases     []string
	NetNS      []string
}

func snapshotHost(t testing.TB, env *harness.Env) hostState {
	t.Helper()
	var s hostState
	var err error
	if s.Shims, err = criShims(env); err != nil {
		t.Fatal(err)
	}
	if s.Mounts, err = mountPoints(env.Dir); err != nil {
		t.Fatal(err)
	}
	s.Bundles, _ = filepath.Glob(bundleDir(env, "*"))
	s.Leases, _ = filepath.Glob(filepath.Join(env.Dir, "cni", "ipam", "*", "[0-9]*"))
	s.NetNS, _ = filepath.Glob(filepath.Join(env.Dir, "state", "io.containerd.grpc.v1.cri", "netns", "*"))
	ctx := namespaces.WithNamespace(context.Background(), harness.CRINamespace)
	cs, err := env.Client.ContainerService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		s.Containers = append(s.Containers, c.ID)
	}
	return s
}

// newSince lists what is in s but not in before.
func (s hostState) newSince(before hostState) []string {
	var out []string
	diff := func(what string, now, was []string) {
		for _, x := range now {
			if !slices.Contains(was, x) {
				out = append(out, what+" "+x)
			}
		}
	}
	for pid, sp := range s.Shims {
		if _, ok := before.Shims[pid]; !ok {
			out = append(out, fmt.Sprintf("shim process %d (%s)", pid, sp.Binary))
		}
	}
	diff("mount", s.Mounts, before.Mounts)
	diff("bundle", s.Bundles, before.Bundles)
	diff("containerd container", s.Containers, before.Containers)
	diff("IP lease", s.Leases, before.Leases)
	diff("netns", s.NetNS, before.NetNS)
	return out
}

// assertNothingNew waits until nothing is left beyond the before snapshot.
func assertNothingNew(t testing.TB, env *harness.Env, before hostState) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		leaks := snapshotHost(t, env).newSince(before)
		if len(leaks) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind by the failed pod:\n  %s", strings.Join(leaks, "\n  "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
