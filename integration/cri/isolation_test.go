package cri

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// idMapping is one line of /proc/<pid>/uid_map.
type idMapping struct{ Inside, Outside, Size uint64 }

func readIDMap(t testing.TB, pid int, file string) []idMapping {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []idMapping
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("%s of pid %d: bad line %q", file, pid, line)
		}
		var m idMapping
		for i, p := range []*uint64{&m.Inside, &m.Outside, &m.Size} {
			if *p, err = strconv.ParseUint(f[i], 10, 64); err != nil {
				t.Fatalf("%s of pid %d: %v", file, pid, err)
			}
		}
		out = append(out, m)
	}
	return out
}

// TestPodUserNamespace checks stockade's user-namespace promise under CRI,
// for pods that did not ask for hostUsers: false: each pod gets its own
// 65536-ID range above the host's IDs, shared by its sandbox and
// containers, and root in the container is an unprivileged user on the host.
func TestPodUserNamespace(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	var fps []footprint
	for _, name := range []string{"a", "b"} {
		p := mustRunPod(t, env, uniqueName(t, name))
		id := p.start("main", "sleep", "3600")
		p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
		if out := p.mustExec(id, "id", "-u"); strings.TrimSpace(out) != "0" {
			t.Errorf("pod %s: container user is %q, want root inside its namespace", name, out)
		}
		// The kubelet's /etc/hosts, root's on disk, is idmapped through the
		// sandbox's namespace, which the container joins: root's inside too
		// (unmapped, it would show as nobody, 65534).
		if out := p.mustExec(id, "stat", "-c", "%u:%g", "/etc/hosts"); strings.TrimSpace(out) != "0:0" {
			t.Errorf("pod %s: /etc/hosts owned by %q inside, want 0:0 through the idmapped mount", name, out)
		}
		fps = append(fps, capture(t, p))
	}
	for _, fp := range fps {
		for _, file := range []string{"uid_map", "gid_map"} {
			sandboxMap := readIDMap(t, fp.Pids[0], file)
			if len(sandboxMap) != 1 || sandboxMap[0].Inside != 0 || sandboxMap[0].Size != 65536 || sandboxMap[0].Outside < 65536 {
				t.Errorf("pod %s: sandbox %s %v, want one 65536-ID range above 65535", fp.Name, file, sandboxMap)
			}
			for i, pid := range fp.Pids[1:] {
				if m := readIDMap(t, pid, file); fmt.Sprint(m) != fmt.Sprint(sandboxMap) {
					t.Errorf("pod %s: container %s %s %v, the sandbox's is %v", fp.Name, fp.IDs[i+1][:12], file, m, sandboxMap)
				}
			}
		}
		// The host sees the container's root as the range's first ID.
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", fp.Pids[1]))
		if err != nil {
			t.Fatal(err)
		}
		uids, _ := statusField(string(st), "Uid")
		if f := strings.Fields(uids); len(f) == 0 || f[0] == "0" {
			t.Errorf("pod %s: container root is host uid %q", fp.Name, uids)
		}
	}
	a, b := readIDMap(t, fps[0].Pids[0], "uid_map")[0], readIDMap(t, fps[1].Pids[0], "uid_map")[0]
	if a.Outside < b.Outside+b.Size && b.Outside < a.Outside+a.Size {
		t.Errorf("two pods share host IDs: %v and %v", a, b)
	}
}

// TestHostNetworkPodRefused checks that a hostNetwork pod, which cannot run
// in a user namespace, is refused under the default node policy
// (userns.host_namespace_pods = "refuse") with an error that says why and
// how to allow it, and that the refused pod leaves nothing behind.
func TestHostNetworkPodRefused(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	before := snapshotHost(t, env)
	cfg := podConfig(env, uniqueName(t, ""), nil)
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg.Hostname = "" // the kubelet sends none for host-network pods
	_, err := runPod(t, env, cfg)
	if err == nil {
		t.Fatal("a hostNetwork pod ran under the refuse policy")
	}
	for _, want := range []string{"host network namespace", "host_namespace_pods"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	assertNothingNew(t, env, before)
	if err := removeCgroup(cfg.Linux.CgroupParent); err != nil {
		t.Errorf("pod cgroup: %v", err)
	}
}
