package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/stockade-dev/stockade/integration/harness"
)

// The mission end to end: a syscall the profile denies in a stockade pod
// gives a denial record naming the pod's Kubernetes namespace, pod and
// container, read with `stockade denials` as an operator would.
func TestDenialNamesThePod(t *testing.T) {
	only(t, "stockade", func(t *testing.T, k *K) {
		k.pod("denied", "unshare -U true; echo unshare-exit=$?; exec sleep 3600", "", "")
		k.waitReady("denied")
		if out := k.must("logs", "denied"); !strings.Contains(out, "unshare-exit=1") {
			t.Fatalf("unshare was not refused: log %q", out)
		}
		type record struct {
			Namespace string `json:"namespace"`
			Pod       string `json:"pod"`
			Container string `json:"container"`
			Syscall   string `json:"syscall"`
			Action    string `json:"action"`
		}
		var got []record
		k.eventually("a denial record for the pod", func() error {
			cmd := exec.Command(filepath.Join(binDir, "stockade"), "denials", "--dir", k.c.Env.LogDir,
				"-n", k.NS, "--pod", "denied", "-o", "json")
			out, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("stockade denials: %w", err)
			}
			got = got[:0]
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				var r record
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					return fmt.Errorf("record %q: %w", sc.Text(), err)
				}
				got = append(got, r)
			}
			for _, r := range got {
				if r.Syscall == "unshare" {
					return nil
				}
			}
			return fmt.Errorf("no unshare record in %q", out)
		})
		for _, r := range got {
			if r.Syscall != "unshare" {
				continue
			}
			if r.Namespace != k.NS || r.Pod != "denied" || r.Container != "main" {
				t.Errorf("record names %s/%s/%s, want %s/denied/main", r.Namespace, r.Pod, r.Container, k.NS)
			}
		}
	})
}

// kubectl delete leaves no shim process, container process or pod cgroup
// behind.
func TestDeleteLeavesNothing(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("p", sleeper, "", "")
		k.waitReady("p")
		uid := k.jsonpath("pod/p", "{.metadata.uid}")
		sandbox := sandboxID(t, k, "p")
		ctrID := strings.TrimPrefix(k.jsonpath("pod/p", "{.status.containerStatuses[0].containerID}"), "containerd://")
		if len(procsWithArg(sandbox)) == 0 {
			t.Fatalf("no shim process with -id %s before the delete", sandbox)
		}
		// The pod's user-namespace lease names its sandbox: the check below
		// looks in the right place.
		if k.Class == "stockade" && len(stateNaming(k, sandbox, ctrID)) == 0 {
			t.Fatalf("no shim state names sandbox %s while the pod runs", sandbox)
		}
		// Likewise the container's rootfs mount and the pod's cgroups.
		if len(mountsNaming(sandbox, ctrID)) == 0 {
			t.Fatalf("no mount names container %s while the pod runs", ctrID)
		}
		if len(podCgroups(uid)) == 0 {
			t.Fatalf("no cgroup for pod %s while it runs", uid)
		}
		k.must("delete", "pod", "p", "--timeout="+waitTimeout)
		k.eventually("shim gone", func() error {
			if pids := procsWithArg(sandbox); len(pids) > 0 {
				return fmt.Errorf("processes for sandbox %s still run: %v", sandbox, pids)
			}
			return nil
		})
		k.eventually("mounts gone", func() error {
			if m := mountsNaming(sandbox, ctrID); len(m) > 0 {
				return fmt.Errorf("mounts left: %v", m)
			}
			return nil
		})
		if k.Class == "stockade" {
			k.eventually("shim state gone", func() error {
				if left := stateNaming(k, sandbox, ctrID); len(left) > 0 {
					return fmt.Errorf("state left: %v", left)
				}
				return nil
			})
		}
		k.eventually("pod cgroups gone", func() error {
			if m := podCgroups(uid); len(m) > 0 {
				return fmt.Errorf("cgroups left: %v", m)
			}
			return nil
		})
	})
}

// stateNaming returns the files under the stockade shim's state_dir (ID-range
// leases, registrations) whose path names the sandbox or container, or whose
// content names the sandbox.
func stateNaming(k *K, sandbox, ctrID string) []string {
	var out []string
	state := filepath.Join(k.c.Env.Dir, "stockade", "state")
	_ = filepath.WalkDir(state, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.Contains(path, sandbox) || strings.Contains(path, ctrID) {
			out = append(out, path)
			return nil
		}
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), sandbox) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// mountsNaming returns the host's mount points whose line names the sandbox
// or the container.
func mountsNaming(sandbox, ctrID string) []string {
	var out []string
	for _, m := range mounts() {
		if strings.Contains(m.Point, sandbox) || strings.Contains(m.Point, ctrID) {
			out = append(out, m.Point)
		}
	}
	return out
}

// podCgroups returns the pod's cgroup directories in every hierarchy.
func podCgroups(uid string) []string {
	var out []string
	for _, root := range cgroupDirs() {
		m, _ := filepath.Glob(filepath.Join(root, "kubepods", "*", "pod"+uid))
		out = append(out, m...)
		m, _ = filepath.Glob(filepath.Join(root, "kubepods", "pod"+uid))
		out = append(out, m...)
	}
	return out
}

// sandboxID returns the CRI sandbox ID of a pod, read from its first
// container's spec in the private containerd.
func sandboxID(t *testing.T, k *K, pod string) string {
	t.Helper()
	id := strings.TrimPrefix(k.jsonpath("pod/"+pod, "{.status.containerStatuses[0].containerID}"), "containerd://")
	ctx := namespaces.WithNamespace(context.Background(), harness.CRINamespace)
	ctr, err := k.c.Env.Client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("container %q of pod %s: %v", id, pod, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb := spec.Annotations["io.kubernetes.cri.sandbox-id"]
	if sb == "" {
		t.Fatalf("container %s has no sandbox-id annotation", id)
	}
	return sb
}

// procsWithArg returns the pids of processes with arg among their arguments
// (a shim carries its sandbox's ID after -id).
func procsWithArg(arg string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if a == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// Record mode end to end: a Deployment recorded with
// stockade.dev/seccomp-mode: record leaves a profile for its container in
// the store; a new ReplicaSet held to it with stockade.dev/seccomp-profile
// runs, and a call the recording never saw is denied and reported against
// the recorded profile.
func TestRecordThenEnforce(t *testing.T) {
	only(t, "stockade", func(t *testing.T, k *K) {
		deploy := func(replicas int, annotation string) {
			k.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: rec
spec:
  replicas: %d
  selector:
    matchLabels: {app: rec}
  template:
    metadata:
      labels: {app: rec}
      annotations: {%s}
    spec:
      runtimeClassName: {{CLASS}}
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      containers:
      - name: main
        image: {{IMAGE}}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo started; ls / > /dev/null; exec sleep 3600"]
`, replicas, annotation))
			k.must("rollout", "status", "deployment/rec", "--timeout="+waitTimeout)
		}
		deploy(2, `stockade.dev/seccomp-mode: record`)
		pods := strings.Fields(k.must("get", "pods", "-l", "app=rec", "-o", "jsonpath={.items[*].metadata.name}"))
		if len(pods) == 0 {
			t.Fatal("no pods")
		}
		k.mustExec(pods[0], "cat", "/proc/self/status")
		// A recording is merged into the store when its container exits.
		k.must("scale", "deployment/rec", "--replicas=0")
		k.must("wait", "--for=delete", "pod", "-l", "app=rec", "--timeout="+waitTimeout)
		name := k.NS + "/rec/main"
		stockade := filepath.Join(binDir, "stockade")
		k.eventually("the recorded profile", func() error {
			out, err := exec.Command(stockade, "profile", "show", name, "--store", ProfileStore(k.c.Env)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("stockade profile show %s: %v: %s", name, err, out)
			}
			if !strings.Contains(string(out), "execve") {
				return fmt.Errorf("recorded profile lacks execve: %s", out)
			}
			return nil
		})

		deploy(1, `stockade.dev/seccomp-profile: rec/main`)
		pod := strings.Fields(k.must("get", "pods", "-l", "app=rec", "--field-selector=status.phase=Running",
			"-o", "jsonpath={.items[*].metadata.name}"))
		if len(pod) != 1 {
			t.Fatalf("pods of the enforced ReplicaSet: %v", pod)
		}
		// sync(2) appears nowhere in the recording.
		_, _ = k.exec(pod[0], "sync")
		k.eventually("a denial against the recorded profile", func() error {
			out, err := exec.Command(stockade, "denials", "--dir", k.c.Env.LogDir, "-n", k.NS,
				"--pod", pod[0], "-o", "json").Output()
			if err != nil {
				return fmt.Errorf("stockade denials: %w", err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var r struct {
					Container, Syscall, Profile string
				}
				if json.Unmarshal([]byte(line), &r) == nil && r.Syscall == "sync" {
					if r.Container != "main" || r.Profile != "recorded:"+name {
						t.Errorf("record names container %q profile %q, want main, recorded:%s", r.Container, r.Profile, name)
					}
					return nil
				}
			}
			return fmt.Errorf("no sync record in %q", out)
		})
	})
}
