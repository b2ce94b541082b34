package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Issue 19's cluster promise on two nodes of one machine (two kubelets,
// each with its own containerd and state): a Deployment recorded with one
// replica on each node merges into one RecordedSeccompProfile, which both
// nodes' agents write into their stores; a new replica on either node is
// held to the merged profile (a call only the other node recorded works),
// a never-recorded call is denied on both, and the denials show as Events
// and metrics of each node. The agents start only after the recordings
// were saved: an agent that was not running loses nothing.
func TestTwoNodes(t *testing.T) {
	only(t, "stockade", func(t *testing.T, k *K) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		n2, err := k.c.StartSecondNode(ctx)
		if err != nil {
			t.Fatalf("second node: %v", err)
		}
		t.Cleanup(func() {
			// The namespace's pods first, so the node goes down empty.
			_, _ = k.kubectl("delete", "deployments", "--all", "--wait", "--timeout=60s")
			if err := n2.Stop(); err != nil {
				t.Errorf("stop the second node: %v", err)
			}
		})
		installCRD(t, k.c)
		nodes := []struct {
			name string
			env  *harness.Env
			addr string
		}{{NodeName, k.c.Env, "127.0.0.1:19747"}, {n2.Name, n2.Env, "127.0.0.1:19746"}}
		stockade := filepath.Join(binDir, "stockade")

		deploy := func(name, annotation string) map[string]string {
			k.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: 2
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {%[2]s}
    spec:
      runtimeClassName: {{CLASS}}
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      tolerations: [%[3]s]
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {matchLabels: {app: %[1]s}}
      containers:
      - name: main
        image: {{IMAGE}}
        imagePullPolicy: Never
        command: ["sh", "-c", "echo started; exec sleep 3600"]
`, name, annotation, node2Toleration))
			k.must("rollout", "status", "deployment/"+name, "--timeout="+waitTimeout)
			out := k.must("get", "pods", "-l", "app="+name, "--field-selector=status.phase=Running",
				"-o", `jsonpath={range .items[*]}{.spec.nodeName} {.metadata.name}{"\n"}{end}`)
			pods := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if f := strings.Fields(l); len(f) == 2 {
					pods[f[0]] = f[1]
				}
			}
			if pods[NodeName] == "" || pods[n2.Name] == "" {
				t.Fatalf("deployment %s: want a pod on each node, got %v", name, pods)
			}
			return pods
		}
		stored := func(env *harness.Env, name string) ([]string, error) {
			out, err := exec.Command(stockade, "profile", "export", name, "--store", ProfileStore(env), "--format", "oci").CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("stockade profile export %s: %v: %s", name, err, out)
			}
			var p struct {
				Syscalls []struct {
					Names  []string `json:"names"`
					Action string   `json:"action"`
				} `json:"syscalls"`
			}
			if err := json.Unmarshal(out, &p); err != nil {
				return nil, err
			}
			var names []string
			for _, s := range p.Syscalls {
				if s.Action == "SCMP_ACT_ALLOW" {
					names = append(names, s.Names...)
				}
			}
			slices.Sort(names)
			return slices.Compact(names), nil
		}

		// Record: one replica per node, each doing something the other
		// does not (rmdir on the second node only).
		pods := deploy("web", "stockade.dev/seccomp-mode: record")
		_, _ = k.exec(pods[n2.Name], "rmdir", "/no-such-dir")
		k.must("scale", "deployment/web", "--replicas=0")
		k.must("wait", "--for=delete", "pod", "-l", "app=web", "--timeout="+waitTimeout)
		name := k.NS + "/web/main"
		var local [2][]string
		for i, n := range nodes {
			k.eventually("the recording on "+n.name, func() error {
				var err error
				local[i], err = stored(n.env, name)
				return err
			})
		}
		if slices.Contains(local[0], "rmdir") || !slices.Contains(local[1], "rmdir") {
			t.Fatalf("rmdir recorded on %s: %v, on %s: %v; want only on the second", NodeName,
				slices.Contains(local[0], "rmdir"), n2.Name, slices.Contains(local[1], "rmdir"))
		}

		// The agents merge both into one object and it back into both stores.
		for _, n := range nodes {
			startAgentOn(t, k.c, k.c.Kubeconfig, n.name, n.env, k.NS, filepath.Join(t.TempDir(), "agent"), n.addr)
		}
		var obj rsp
		k.eventually("one object with both nodes' recordings", func() error {
			out, err := k.kubectl("get", "recordedseccompprofile", "web.main", "-o", "json")
			if err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(out), &obj); err != nil {
				return err
			}
			if len(obj.Status.Nodes) != 2 || obj.Spec.Runs != 2 {
				return fmt.Errorf("runs %d, nodes %+v", obj.Spec.Runs, obj.Status.Nodes)
			}
			return nil
		})
		t.Logf("RecordedSeccompProfile %s/web.main: runs %d, nodes %+v", k.NS, obj.Spec.Runs, obj.Status.Nodes)
		union := slices.Clone(local[0])
		union = append(union, local[1]...)
		slices.Sort(union)
		union = slices.Compact(union)
		for _, n := range nodes {
			k.eventually("the merged profile in "+n.name+"'s store", func() error {
				got, err := stored(n.env, name)
				if err != nil {
					return err
				}
				if !slices.Equal(got, union) {
					return fmt.Errorf("stored %d syscalls, want the union's %d", len(got), len(union))
				}
				return nil
			})
		}

		// Held to the merged profile on both nodes.
		held := deploy("held", "stockade.dev/seccomp-profile: web/main")
		for _, n := range nodes {
			pod := held[n.name]
			out, err := k.exec(pod, "rmdir", "/no-such-dir")
			if err == nil || !strings.Contains(err.Error(), "No such file") {
				t.Errorf("rmdir on %s (recorded only on the second node): %v %s, want ENOENT", n.name, err, out)
			}
			_, _ = k.exec(pod, "sync") // recorded nowhere
			k.eventually("the sync denial on "+n.name, func() error {
				out, err := exec.Command(stockade, "denials", "--dir", n.env.LogDir, "-n", k.NS, "--pod", pod, "-o", "json").Output()
				if err != nil {
					return fmt.Errorf("stockade denials: %w", err)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					var r struct{ Syscall, Profile, Node string }
					if json.Unmarshal([]byte(line), &r) == nil && r.Syscall == "sync" {
						if r.Profile != "recorded:"+name {
							t.Errorf("sync on %s denied under %q, want recorded:%s", n.name, r.Profile, name)
						}
						return nil
					}
				}
				return fmt.Errorf("no sync denial in %q", out)
			})
			k.eventually("the sync denial as an Event and a metric of "+n.name, func() error {
				out, err := k.kubectl("get", "events", "--field-selector", "involvedObject.name="+pod+",reason=SyscallDenied",
					"-o", "jsonpath={.items[*].message}")
				if err != nil {
					return err
				}
				if !strings.Contains(out, "stockade denied sync (EPERM)") {
					return fmt.Errorf("events of %s: %q", pod, out)
				}
				mctx, mcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer mcancel()
				body, err := httpGet(mctx, "http://"+n.addr+"/metrics")
				if err != nil {
					return err
				}
				series := fmt.Sprintf(`stockade_denials_total{action="denied",container="main",namespace="%s",node="%s",pod="%s",syscall="sync"}`, k.NS, n.name, pod)
				if !strings.Contains(body, series) {
					return fmt.Errorf("no %s", series)
				}
				return nil
			})
		}
	})
}
