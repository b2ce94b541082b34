package cri

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Calls the kubelet makes on running pods besides create/start/stop:
// restarts, stats, resource updates, and security contexts that the shim
// must apply to the container and to every exec in it.

// TestContainerRestart follows the kubelet restarting a crashed container:
// a new container with the same name and attempt 1 in the same sandbox
// (and so in the same shim), while the exited one is kept until GC.
func TestContainerRestart(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	first := p.start("crashy", "sh", "-c", "echo attempt 0; exit 1")
	p.waitState(first, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)

	second := p.startWith("crashy", func(c *runtimeapi.ContainerConfig) {
		c.Metadata.Attempt = 1
		c.LogPath = filepath.Join("crashy", "1.log")
		c.Annotations["io.kubernetes.container.restartCount"] = "1"
	}, "sh", "-c", "echo attempt 1; exec sleep 3600")
	st := p.waitState(second, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	if st.Metadata.Attempt != 1 {
		t.Errorf("restarted container has attempt %d", st.Metadata.Attempt)
	}
	if out := p.mustExec(second, "echo", "alive"); out != "alive\n" {
		t.Errorf("exec in restarted container: %q", out)
	}
	if st, _, err := p.status(first); err != nil || st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 1 {
		t.Errorf("the first attempt: %v %v", st, err)
	}
	waitLog(t, filepath.Join(p.Config.LogDirectory, "crashy", "1.log"), func(l []logLine) bool { return hasLine(l, "stdout", "attempt 1") })
	fp := capture(t, p)
	if err := p.teardown(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, env, fp)
}

// TestContainerStats checks the stats the kubelet reads from CRI for
// eviction, the summary API and autoscaling.
func TestContainerStats(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	// Some CPU and 8 MiB of memory held in a shell variable.
	id := p.start("busy", "sh", "-c", "x=$(head -c 8388608 /dev/zero | tr '\\0' a); i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	ctx, cancel := contextWithTimeout()
	defer cancel()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := p.rs.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("container stats: %v", err)
		}
		s := resp.Stats
		if s.GetCpu().GetUsageCoreNanoSeconds().GetValue() > 0 && s.GetMemory().GetWorkingSetBytes().GetValue() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container stats stay empty: cpu %v memory %v", s.GetCpu(), s.GetMemory())
		}
		time.Sleep(200 * time.Millisecond)
	}
	list, err := p.rs.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{Id: p.ID},
	})
	if err != nil {
		t.Fatalf("list pod sandbox stats: %v", err)
	}
	if len(list.Stats) != 1 || len(list.Stats[0].GetLinux().GetContainers()) != 1 {
		t.Errorf("pod stats: %v", list.Stats)
	}
}

// TestUpdateContainerResources follows an in-place resize: the new limits
// must reach the container's cgroup.
func TestUpdateContainerResources(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	id := p.start("main", "sleep", "3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	ctx, cancel := contextWithTimeout()
	defer cancel()
	const memLimit = 96 << 20
	_, err := p.rs.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id,
		Linux:       &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: memLimit},
	})
	if err != nil {
		t.Fatalf("update container resources: %v", err)
	}
	dir := filepath.Join(p.Config.Linux.CgroupParent, id)
	for file, want := range map[string]int64{
		"memory/memory.limit_in_bytes": memLimit,
		"cpu/cpu.cfs_quota_us":         50000,
		"cpu/cpu.shares":               512,
	} {
		sub, name := filepath.Split(file)
		path := filepath.Join("/sys/fs/cgroup", sub, dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("cgroup v1 file %s: %v (this test reads v1 controllers)", path, err)
		}
		if got, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); got != want {
			t.Errorf("%s = %d after the update, want %d", path, got, want)
		}
	}
}

// TestSecurityContext checks that the container's process, and every exec
// in it, runs with the user, groups, capabilities, no_new_privs and
// read-only rootfs the kubelet asked for.
func TestSecurityContext(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	id := p.startWith("restricted", func(c *runtimeapi.ContainerConfig) {
		sc := c.Linux.SecurityContext
		sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: 3000}
		sc.SupplementalGroups = []int64{4000}
		sc.ReadonlyRootfs = true
		sc.NoNewPrivs = true
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
	}, "sleep", "3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)

	for _, proc := range []string{"1", "self"} { // the init, and this exec
		status := p.mustExec(id, "cat", "/proc/"+proc+"/status")
		for key, want := range map[string]string{
			"Uid": "1000\t1000\t1000\t1000", "Gid": "3000\t3000\t3000\t3000",
			"NoNewPrivs": "1", "CapEff": "0000000000000000", "CapBnd": "0000000000000000",
		} {
			if got, _ := statusField(status, key); got != want {
				t.Errorf("/proc/%s/status %s = %q, want %q", proc, key, got, want)
			}
		}
		if groups, _ := statusField(status, "Groups"); !strings.Contains(groups, "4000") {
			t.Errorf("/proc/%s/status Groups = %q, want 4000 among them", proc, groups)
		}
	}
	out, err := p.execSync(id, 30*time.Second, "touch", "/written")
	if err != nil || out.ExitCode == 0 || !strings.Contains(string(out.Stderr), "Read-only file system") {
		t.Errorf("write to a read-only rootfs: %v, exit %d, %q", err, out.GetExitCode(), out.GetStderr())
	}
	// The kubelet's mounts stay writable on a read-only rootfs.
	if out := p.mustExec(id, "sh", "-c", "echo ok > /dev/termination-log && echo written"); out != "written\n" {
		t.Errorf("termination log not writable: %q", out)
	}
}

// TestShimKilled kills the pod's shim as the OOM killer would, then tears
// the pod down as the kubelet does after noticing: the containers must be
// reported dead, and nothing of the pod may survive. Otherwise the kubelet,
// seeing them dead, starts new copies beside the orphans.
//
// containerd 2.3.7 runs "shim delete" only for the sandbox of a dead
// grouped shim (the app containers' task deletes fail on the closed
// connection and CRI marks them exited), so the shim's delete must clean up
// the whole pod. runc's shim does not: its app containers keep running.
func TestShimKilled(t *testing.T) {
	env := harness.Get(t)
	if env.Handler == harness.HandlerRunc {
		t.Skip("runc's shim leaves a dead pod shim's app containers running (containerd runs shim delete only for the sandbox)")
	}
	p := mustRunPod(t, env, uniqueName(t, ""))
	ids := []string{p.start("one", "sleep", "3600"), p.start("two", "sleep", "3600")}
	for _, id := range ids {
		p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	}
	fp := capture(t, p)
	if err := killPid(fp.Shim.Pid); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		p.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
	}
	if err := p.teardown(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, env, fp)
}

func killPid(pid int) error {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := proc.Kill(); err != nil {
		return fmt.Errorf("kill shim %d: %w", pid, err)
	}
	return nil
}
