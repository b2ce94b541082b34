package cri

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// TestOneShimPerPod checks that the sandbox and every container of a pod
// are served by one shim process over one socket, and that the containers
// share the pod's network, IPC, UTS and user namespaces but (with the
// kubelet's Pid: CONTAINER) not its PID namespace.
func TestOneShimPerPod(t *testing.T) {
	env := harness.Get(t)
	before, err := criShims(env)
	if err != nil {
		t.Fatal(err)
	}
	p := mustRunPod(t, env, uniqueName(t, ""))
	var ids []string
	for _, name := range []string{"one", "two", "three"} {
		ids = append(ids, p.start(name, "sleep", "3600"))
	}
	for _, id := range ids {
		p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	}
	fp := capture(t, p)

	wantBinary := "containerd-shim-stockade-v1"
	if env.Handler == harness.HandlerRunc {
		wantBinary = "containerd-shim-runc-v2"
	}
	if fp.Shim.Binary != wantBinary || fp.Shim.Namespace != harness.CRINamespace {
		t.Errorf("sandbox shim is %s -namespace %s, want %s -namespace %s", fp.Shim.Binary, fp.Shim.Namespace, wantBinary, harness.CRINamespace)
	}
	for i, id := range fp.IDs[1:] {
		shim, err := shimOf(env, fp.Pids[i+1])
		if err != nil {
			t.Fatal(err)
		}
		if shim.Pid != fp.Shim.Pid {
			t.Errorf("container %s is served by shim %d, the sandbox by %d", id[:12], shim.Pid, fp.Shim.Pid)
		}
		if sock, err := shimSocket(env, id); err != nil || sock != fp.ShimSocket {
			t.Errorf("container %s talks to shim at %q (%v), the sandbox at %q", id[:12], sock, err, fp.ShimSocket)
		}
	}
	after, err := criShims(env)
	if err != nil {
		t.Fatal(err)
	}
	var added []string
	for pid, s := range after {
		if _, ok := before[pid]; !ok {
			added = append(added, fmt.Sprintf("%d (%s)", pid, s.Binary))
		}
	}
	if len(added) != 1 {
		t.Errorf("a pod with 3 containers started %d shim processes, want 1: %v", len(added), added)
	}

	for _, ns := range []string{"net", "ipc", "uts", "user"} {
		sandboxNS := nsOf(t, fp.Pids[0], ns)
		for i, pid := range fp.Pids[1:] {
			if got := nsOf(t, pid, ns); got != sandboxNS {
				t.Errorf("container %s: %s namespace %s, the pod's is %s", fp.IDs[i+1][:12], ns, got, sandboxNS)
			}
		}
	}
	if nsOf(t, fp.Pids[1], "pid") == nsOf(t, fp.Pids[2], "pid") {
		t.Error("two containers share a PID namespace although the kubelet asked for Pid: CONTAINER")
	}
	// Ipc: POD also means one /dev/shm (the sandbox's) for the whole pod.
	p.mustExec(ids[0], "sh", "-c", "echo shared > /dev/shm/probe")
	if out := p.mustExec(ids[2], "cat", "/dev/shm/probe"); out != "shared\n" {
		t.Errorf("/dev/shm is not shared in the pod: %q", out)
	}

	if err := p.teardown(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, env, fp)
}

func nsOf(t testing.TB, pid int, ns string) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatalf("namespace %s of pid %d: %v", ns, pid, err)
	}
	return link
}

// parallelPods is how many pods TestParallelPods runs at once: what a node
// sees when a Deployment scales up.
const parallelPods = 20

// TestParallelPods starts pods concurrently, each with a container that
// answers an exec, checks they got a shim each, then removes them all
// concurrently and checks that nothing of any of them is left.
func TestParallelPods(t *testing.T) {
	env := harness.Get(t)
	before, err := criShims(env)
	if err != nil {
		t.Fatal(err)
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		pods []*pod
		fps  []footprint
		errs []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	began := time.Now()
	for i := range parallelPods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := uniqueName(t, fmt.Sprint(i))
			p, err := runPod(t, env, podConfig(env, name, nil))
			if err != nil {
				fail("%v", err)
				return
			}
			mu.Lock()
			pods = append(pods, p)
			mu.Unlock()
			id, err := p.create("main", "sleep", "3600")
			if err == nil {
				ctx, cancel := contextWithTimeout()
				_, err = p.rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
				cancel()
			}
			if err != nil {
				fail("pod %s: %v", name, err)
				return
			}
			out, err := p.execSync(id, 30*time.Second, "echo", name)
			if err != nil || out.ExitCode != 0 || strings.TrimSpace(string(out.Stdout)) != name {
				fail("pod %s: exec: %v %v", name, out, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d pods running after %v", len(pods), time.Since(began).Round(time.Millisecond))
	if len(errs) > 0 {
		t.Fatalf("%d of %d pods failed:\n  %s", len(errs), parallelPods, strings.Join(errs, "\n  "))
	}

	shims := map[int]bool{}
	for _, p := range pods {
		fp := capture(t, p)
		fps = append(fps, fp)
		if shims[fp.Shim.Pid] {
			t.Errorf("pod %s shares shim %d with another pod", fp.Name, fp.Shim.Pid)
		}
		shims[fp.Shim.Pid] = true
	}
	after, err := criShims(env)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(after) - len(before); n != parallelPods {
		t.Errorf("%d pods run %d new shim processes, want one each", parallelPods, n)
	}

	began = time.Now()
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.teardown(); err != nil {
				fail("pod %s: %v", p.Config.Metadata.Name, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d pods removed after %v", len(pods), time.Since(began).Round(time.Millisecond))
	if len(errs) > 0 {
		t.Fatalf("teardown:\n  %s", strings.Join(errs, "\n  "))
	}
	assertGone(t, env, fps...)
	if now, err := criShims(env); err != nil || len(now) != len(before) {
		t.Errorf("%d shims serve %s after teardown (%v), %d did before", len(now), harness.CRINamespace, err, len(before))
	}
}
