package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// agentMetricsAddr is where TestAgent's agent serves; the DaemonSet's
// agent in TestInstaller has the shipped port (9745).
const agentMetricsAddr = "127.0.0.1:19745"

// crdFile is contrib's CRD of recorded profiles.
func crdFile() string {
	return filepath.Join(repoDir, "contrib", "kubernetes", "recordedseccompprofile-crd.yaml")
}

// installCRD applies contrib's CRD and waits until the API server serves
// it. It stays for the rest of the run (TestInstaller's agent uses it too).
func installCRD(t *testing.T, c *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.kubectl(ctx, "apply", "-f", crdFile()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(ctx, "wait", "--for=condition=Established", "crd/recordedseccompprofiles.stockade.dev", "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
}

// agentProc is a `stockade agent` run by a test, as the DaemonSet would
// run it on the node, against the cluster's real API server.
type agentProc struct {
	t    *testing.T
	args []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startAgent(t *testing.T, c *Cluster, kubeconfig, ns, stateDir string) *agentProc {
	return startAgentOn(t, c, kubeconfig, NodeName, c.Env, ns, stateDir, agentMetricsAddr)
}

// startAgentOn starts an agent for node, whose containerd is env, limited
// to namespace ns, serving metrics on addr.
func startAgentOn(t *testing.T, c *Cluster, kubeconfig, node string, env *harness.Env, ns, stateDir, addr string) *agentProc {
	a := &agentProc{t: t, log: filepath.Join(c.Dir, "logs", "agent-"+node+"-"+ns+".log"), args: []string{"agent",
		"--kubeconfig", kubeconfig, "--node", node, "--namespace", ns,
		"--denials-dir", env.LogDir, "--store-dir", ProfileStore(env), "--state-dir", stateDir,
		"--metrics-addr", addr, "--poll-interval", "300ms", "--sync-interval", "1s"}}
	a.start()
	t.Cleanup(func() {
		a.stop(syscall.SIGTERM)
		if t.Failed() {
			data, _ := os.ReadFile(a.log)
			t.Logf("agent log:\n%s", tailLines(string(data), 60))
		}
	})
	return a
}

func (a *agentProc) start() {
	a.t.Helper()
	f, err := os.OpenFile(a.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		a.t.Fatal(err)
	}
	a.cmd = exec.Command(filepath.Join(binDir, "stockade"), a.args...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	if err := a.cmd.Start(); err != nil {
		f.Close()
		a.t.Fatal(err)
	}
	f.Close()
	a.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(a.cmd, a.done)
}

// stop signals the agent and waits for it; SIGKILL is a crash.
func (a *agentProc) stop(sig syscall.Signal) {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(sig)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd = nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

// apiProxy forwards TCP to the API server until cut: an agent configured
// through it loses the API server while the tier's other tests keep it.
type apiProxy struct {
	addr  string
	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newAPIProxy(t *testing.T) *apiProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]bool{}}
	go p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *apiProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", apiserverPort))
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// cut closes the listener and every forwarded connection: the API server
// is unreachable (connection refused) through the proxy.
func (p *apiProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// restore listens again on the same address.
func (p *apiProxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

// kubeconfig writes the admin kubeconfig pointed at the proxy.
func (p *apiProxy) kubeconfig(t *testing.T, c *Cluster) string {
	t.Helper()
	data, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", apiserverPort)
	if !strings.Contains(string(data), server) {
		t.Fatalf("admin kubeconfig does not name %s", server)
	}
	path := filepath.Join(t.TempDir(), "proxy.kubeconfig")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), server, "https://"+p.addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// rsp is the part of a RecordedSeccompProfile the test reads.
type rsp struct {
	Spec struct {
		Workload  string              `json:"workload"`
		Container string              `json:"container"`
		Runs      int                 `json:"runs"`
		Syscalls  map[string][]string `json:"syscalls"`
	} `json:"spec"`
	Status struct {
		Nodes []struct {
			Name string `json:"name"`
			Runs int    `json:"runs"`
		} `json:"nodes"`
	} `json:"status"`
}

// The node agent against the real API server: a denial becomes an Event
// on its pod and a Prometheus series; a recording made while the agent
// was killed becomes a RecordedSeccompProfile object when it is back; an
// object recorded elsewhere (written here as another node's agent would)
// lands in this node's store, a pod held to it runs under it and is denied
// what it lacks; deleting the object removes the profile from the store.
func TestAgent(t *testing.T) {
	only(t, "stockade", func(t *testing.T, k *K) {
		installCRD(t, k.c)
		proxy := newAPIProxy(t)
		agent := startAgent(t, k.c, proxy.kubeconfig(t, k.c), k.NS, filepath.Join(t.TempDir(), "agent"))
		stockade := filepath.Join(binDir, "stockade")
		store := ProfileStore(k.c.Env)

		k.apply(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: rec
spec:
  replicas: 1
  selector:
    matchLabels: {app: rec}
  template:
    metadata:
      labels: {app: rec}
      annotations: {stockade.dev/seccomp-mode: record}
    spec:
      runtimeClassName: {{CLASS}}
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      containers:
      - name: main
        image: {{IMAGE}}
        imagePullPolicy: Never
        command: ["sh", "-c", "unshare -U true; unshare -U true; unshare -U true; echo started; exec sleep 3600"]
`)
		k.must("rollout", "status", "deployment/rec", "--timeout="+waitTimeout)
		pod := strings.TrimSpace(k.must("get", "pods", "-l", "app=rec", "-o", "jsonpath={.items[0].metadata.name}"))

		// The denials as an Event on the pod, as `kubectl describe pod`
		// shows it.
		k.eventually("an Event for the denied unshare", func() error {
			out, err := k.kubectl("get", "events", "--field-selector", "involvedObject.name="+pod+",reason=SyscallDenied", "-o", "json")
			if err != nil {
				return err
			}
			var l struct {
				Items []struct {
					Message        string `json:"message"`
					Type           string `json:"type"`
					Count          int    `json:"count"`
					Source         struct{ Component, Host string }
					InvolvedObject struct {
						Kind, UID string
						FieldPath string `json:"fieldPath"`
					} `json:"involvedObject"`
				} `json:"items"`
			}
			if err := json.Unmarshal([]byte(out), &l); err != nil {
				return err
			}
			for _, e := range l.Items {
				if !strings.HasPrefix(e.Message, "stockade denied unshare (EPERM) ") {
					continue
				}
				if e.Type != "Warning" || e.Source.Component != "stockade-agent" || e.Source.Host != NodeName ||
					e.InvolvedObject.Kind != "Pod" || e.InvolvedObject.FieldPath != "spec.containers{main}" {
					t.Errorf("event %+v", e)
				}
				if e.Count != 3 || e.Message != "stockade denied unshare (EPERM) 3 times" {
					return fmt.Errorf("event count %d, message %q: want all 3 denials", e.Count, e.Message)
				}
				t.Logf("event on pod %s: %s (count %d)", pod, e.Message, e.Count)
				return nil
			}
			return fmt.Errorf("no unshare event in %s", out)
		})
		if out := k.must("describe", "pod", pod); !strings.Contains(out, "stockade denied unshare (EPERM) 3 times") {
			t.Errorf("kubectl describe pod does not show the denials:\n%s", out)
		}
		// ... and as a Prometheus series.
		series := fmt.Sprintf(`stockade_denials_total{action="denied",container="main",namespace="%s",node="%s",pod="%s",syscall="unshare"} 3`, k.NS, NodeName, pod)
		k.eventually("the denials in /metrics", func() error {
			return agentMetricsHave(series, fmt.Errorf("no %s in /metrics", series))
		})

		// The agent dies; the recording is saved meanwhile (the container
		// exits); the agent comes back and merges it.
		agent.stop(syscall.SIGKILL)
		k.must("scale", "deployment/rec", "--replicas=0")
		k.must("wait", "--for=delete", "pod", "-l", "app=rec", "--timeout="+waitTimeout)
		recName := k.NS + "/rec/main"
		k.eventually("the recording in the node's store", func() error {
			out, err := exec.Command(stockade, "profile", "show", recName, "--store", store).CombinedOutput()
			if err != nil {
				return fmt.Errorf("stockade profile show %s: %v: %s", recName, err, out)
			}
			return nil
		})
		agent.start()
		var obj rsp
		k.eventually("the RecordedSeccompProfile object", func() error {
			out, err := k.kubectl("get", "recordedseccompprofile", "rec.main", "-o", "json")
			if err != nil {
				return err
			}
			return json.Unmarshal([]byte(out), &obj)
		})
		sys := obj.Spec.Syscalls["SCMP_ARCH_X86_64"]
		if obj.Spec.Workload != "rec" || obj.Spec.Container != "main" || obj.Spec.Runs != 1 || !contains(sys, "execve") {
			t.Fatalf("object spec %+v", obj.Spec)
		}
		if len(obj.Status.Nodes) != 1 || obj.Status.Nodes[0].Name != NodeName || obj.Status.Nodes[0].Runs != 1 {
			t.Fatalf("object status %+v", obj.Status)
		}
		t.Logf("RecordedSeccompProfile %s/rec.main: runs %d, %d syscalls, nodes %+v", k.NS, obj.Spec.Runs, len(sys), obj.Status.Nodes)

		// The API server unreachable for the agent for a while: a recording
		// made meanwhile stays in the store and is merged when it is back.
		proxy.cut()
		k.must("scale", "deployment/rec", "--replicas=1")
		k.must("rollout", "status", "deployment/rec", "--timeout="+waitTimeout)
		k.must("scale", "deployment/rec", "--replicas=0")
		k.must("wait", "--for=delete", "pod", "-l", "app=rec", "--timeout="+waitTimeout)
		k.eventually("the second recording in the store and the agent cut off", func() error {
			var p struct{ Runs int }
			data, err := os.ReadFile(filepath.Join(store, k.NS, "rec", "main.json"))
			if err != nil {
				return err
			}
			if err := json.Unmarshal(data, &p); err != nil {
				return err
			}
			if p.Runs != 2 {
				return fmt.Errorf("stored runs %d, want 2", p.Runs)
			}
			return agentMetricsHave(`stockade_agent_errors_total{node="`+NodeName+`",reason="api"}`, fmt.Errorf("the agent has not noticed the API server is gone"))
		})
		if out := k.must("get", "recordedseccompprofile", "rec.main", "-o", "jsonpath={.spec.runs}"); strings.TrimSpace(out) != "1" {
			t.Fatalf("object runs %s while its only agent was cut off, want 1", out)
		}
		proxy.restore(t)
		k.eventually("the recording merged after the API server came back", func() error {
			out, err := k.kubectl("get", "recordedseccompprofile", "rec.main", "-o", "json")
			if err != nil {
				return err
			}
			var o rsp
			if err := json.Unmarshal([]byte(out), &o); err != nil {
				return err
			}
			if o.Spec.Runs != 2 || len(o.Status.Nodes) != 1 || o.Status.Nodes[0].Runs != 2 {
				return fmt.Errorf("object runs %d, status %+v", o.Spec.Runs, o.Status.Nodes)
			}
			return nil
		})

		// A profile recorded on another node: the object as that node's
		// agent leaves it (this node never ran the workload).
		spec, err := json.Marshal(map[string]any{
			"workload": "copy", "container": "main", "runs": 2,
			"firstRecorded": "2026-12-01T10:00:00Z", "lastRecorded": "2026-12-01T11:00:00Z",
			"syscalls": obj.Spec.Syscalls,
		})
		if err != nil {
			t.Fatal(err)
		}
		k.apply(fmt.Sprintf(`apiVersion: stockade.dev/v1alpha1
kind: RecordedSeccompProfile
metadata:
  name: copy.main
spec: %s
status:
  nodes: [{name: other-node, runs: 2}]
`, spec))
		copyName := k.NS + "/copy/main"
		k.eventually("the other node's profile in this node's store", func() error {
			out, err := exec.Command(stockade, "profile", "show", copyName, "--store", store).CombinedOutput()
			if err != nil {
				return fmt.Errorf("stockade profile show %s: %v: %s", copyName, err, out)
			}
			return nil
		})
		k.apply(`apiVersion: v1
kind: Pod
metadata:
  name: held
  annotations: {stockade.dev/seccomp-profile: copy/main}
spec:
  runtimeClassName: {{CLASS}}
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
  - name: main
    image: {{IMAGE}}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo started; exec sleep 3600"]
`)
		k.waitReady("held")
		_, _ = k.exec("held", "sync") // not in the recording
		k.eventually("a denial against the cluster's profile", func() error {
			out, err := exec.Command(stockade, "denials", "--dir", k.c.Env.LogDir, "-n", k.NS, "--pod", "held", "-o", "json").Output()
			if err != nil {
				return fmt.Errorf("stockade denials: %w", err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var r struct{ Syscall, Profile string }
				if json.Unmarshal([]byte(line), &r) == nil && r.Syscall == "sync" {
					if r.Profile != "recorded:"+copyName {
						t.Errorf("sync denied under profile %q, want recorded:%s", r.Profile, copyName)
					}
					return nil
				}
			}
			return fmt.Errorf("no sync denial in %q", out)
		})

		// A corrupt object (its spec names another profile than its name
		// does; the API server's schema cannot see that) is counted and
		// left alone; the agent goes on.
		k.apply(`apiVersion: stockade.dev/v1alpha1
kind: RecordedSeccompProfile
metadata:
  name: bad.main
spec: {workload: other, container: main, runs: 1, syscalls: {SCMP_ARCH_X86_64: [read]}}
`)
		k.eventually("the corrupt object counted", func() error {
			return agentMetricsHave(`stockade_agent_errors_total{node="`+NodeName+`",reason="object"}`, fmt.Errorf("no object error in /metrics"))
		})
		for _, n := range []string{k.NS + "/bad/main", k.NS + "/other/main"} {
			if out, err := exec.Command(stockade, "profile", "show", n, "--store", store).CombinedOutput(); err == nil {
				t.Errorf("the corrupt object was written to the store as %s: %s", n, out)
			}
		}

		// Deleting the object stops enforcing it on the node.
		k.must("delete", "recordedseccompprofile", "copy.main")
		k.eventually("the profile gone from the node's store", func() error {
			out, err := exec.Command(stockade, "profile", "show", copyName, "--store", store).CombinedOutput()
			if err == nil {
				return fmt.Errorf("still stored: %s", out)
			}
			if !strings.Contains(string(out), "not found") {
				return fmt.Errorf("stockade profile show: %v: %s", err, out)
			}
			return nil
		})
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// agentMetricsHave reads the node agent's /metrics and returns missing
// unless it holds series.
func agentMetricsHave(series string, missing error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := httpGet(ctx, "http://"+agentMetricsAddr+"/metrics")
	if err != nil {
		return err
	}
	if !strings.Contains(body, series) {
		return missing
	}
	return nil
}
