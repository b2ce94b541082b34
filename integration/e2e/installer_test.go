package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/pelletier/go-toml/v2"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// The installer image mk/e2e.mk builds from this host's files (no registry
// and no base image here): contrib's Dockerfile's payload and install.sh.
const (
	installerImage   = "docker.io/stockade-test/stockade-installer:e2e"
	installerTarball = "images/stockade-installer.tar"
	// The systemd unit install.sh is told to restart; the test's HOST_EXEC
	// command answers systemctl for it by restarting the harness's
	// containerd, which is no systemd unit.
	installerUnit = "stockade-e2e-containerd"
	nodeLabel     = "stockade.dev/enabled"
)

// TestInstaller installs stockade on the node with contrib's installer
// DaemonSet, as issue 17 asks: the image imported into the node's
// containerd, contrib/kubernetes/installer/daemonset.yaml applied with the
// overrides an operator makes (image, env, host paths, host network), the
// handler registered by the drop-in and picked up by a containerd restart,
// a pod running on it, then the DaemonSet's uninstall mode leaving the node
// without binaries, drop-in, handler and label.
//
// It does not call t.Parallel on purpose: it restarts containerd and takes
// the stockade handler and the node label away for a while, so it runs
// alone, before the parallel tests (all of them) are resumed. Its cleanup
// gives the node back exactly as TestMain set it up, even when it fails.
func TestInstaller(t *testing.T) {
	c := get(t)
	tarball := filepath.Join(binDir, installerTarball)
	if _, err := os.Stat(tarball); err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("installer image missing (make e2e-images builds it): %v", err)
		}
		t.Skipf("installer image missing (make e2e-images builds it): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	n := newInstallerNode(t, c)
	if err := importTarball(ctx, c.Env, tarball); err != nil {
		t.Fatal(err)
	}
	if handlers := n.handlers(t); slices.Contains(handlers, "stockade") {
		t.Fatalf("the node's containerd has the stockade handler before the install: %v", handlers)
	}

	manifest := n.manifest(t)
	kube := func(args ...string) string {
		t.Helper()
		out, err := c.kubectl(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectl(context.Background(), "-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=stockade-installer", "-c", "installer", "--tail=100")
			t.Logf("installer logs:\n%s", out)
			out, _ = c.kubectl(context.Background(), "-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=stockade-installer", "-c", "agent", "--tail=30")
			t.Logf("agent logs:\n%s", out)
			out, _ = c.kubectl(context.Background(), "-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=stockade-installer", "-c", "agent", "--previous", "--tail=30")
			t.Logf("agent logs, previous container:\n%s", out)
			out, _ = c.kubectl(context.Background(), "-n", "kube-system", "describe", "pods", "-l", "app.kubernetes.io/name=stockade-installer")
			t.Logf("installer pods:\n%s", out)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if _, err := c.kubectl(dctx, "delete", "-f", manifest, "--ignore-not-found", "--wait", "--timeout=90s"); err != nil {
			t.Errorf("delete the installer: %v", err)
		}
	})
	kube("apply", "-f", manifest)

	// The installer labels the node last, once containerd runs with the
	// handler.
	n.waitFor("the install", func() error {
		if l := n.label(ctx); l != "true" {
			return fmt.Errorf("node label %s=%q", nodeLabel, l)
		}
		return nil
	})
	for _, b := range []string{"containerd-shim-stockade-v1", "stockade"} {
		assertSameFile(t, filepath.Join(binDir, b), filepath.Join(n.binDir, b))
	}
	assertSameFile(t, filepath.Join(repoDir, "contrib", "containerd", "stockade.toml"), filepath.Join(n.dropinDir, "stockade.toml"))
	if n.restarts() == 0 {
		t.Fatal("the installer labelled the node without restarting containerd")
	}
	if handlers := n.handlers(t); !slices.Contains(handlers, "stockade") {
		t.Fatalf("containerd has no stockade handler after the install: %v", handlers)
	}
	// The DaemonSet's second container is the node agent; with the host
	// network it serves its metrics on the node's port.
	n.waitFor("the agent's metrics", func() error {
		body, err := httpGet(ctx, "http://127.0.0.1:9745/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `stockade_sink_last_record_timestamp_seconds{node="`+NodeName+`"}`) {
			return fmt.Errorf("no stockade metrics for node %s in %.300q", NodeName, body)
		}
		return nil
	})

	// A pod on the handler, through contrib's RuntimeClass (its
	// nodeSelector needs the label the installer set).
	const ns = "e2e-installer"
	kube("create", "namespace", ns)
	t.Cleanup(func() {
		_, _ = c.kubectl(context.Background(), "delete", "namespace", ns, "--wait=false")
	})
	n.waitFor("default ServiceAccount", func() error {
		_, err := c.kubectl(ctx, "-n", ns, "get", "serviceaccount", "default")
		return err
	})
	pod := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(pod, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: on-stockade
spec:
  runtimeClassName: stockade
  terminationGracePeriodSeconds: 1
  containers:
    - name: c
      image: %s
      imagePullPolicy: Never
      command: ["sleep", "3600"]
`, Image)), 0o644); err != nil {
		t.Fatal(err)
	}
	kube("-n", ns, "apply", "-f", pod)
	kube("-n", ns, "wait", "--for=condition=Ready", "pod/on-stockade", "--timeout="+waitTimeout)
	shims, err := c.Env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}
	stockadeShims := 0
	for _, argv0 := range shims {
		if filepath.Base(argv0) == "containerd-shim-stockade-v1" {
			stockadeShims++
		}
	}
	if stockadeShims == 0 {
		t.Fatalf("the stockade pod is Ready but no stockade shim runs: %v", shims)
	}
	kube("-n", ns, "delete", "pod", "on-stockade", "--wait", "--timeout="+waitTimeout)

	// Uninstall as contrib's README says: switch the DaemonSet's args.
	before := n.restarts()
	kube("-n", "kube-system", "patch", "ds", "stockade-installer", "--type", "json",
		"-p", `[{"op":"replace","path":"/spec/template/spec/containers/0/args","value":["run-uninstall"]}]`)
	// The binaries go last.
	n.waitFor("the uninstall", func() error {
		for _, b := range []string{"containerd-shim-stockade-v1", "stockade"} {
			if _, err := os.Lstat(filepath.Join(n.binDir, b)); err == nil {
				return fmt.Errorf("%s still installed", b)
			}
		}
		return nil
	})
	kube("-n", "kube-system", "rollout", "status", "ds/stockade-installer", "--timeout="+waitTimeout)
	if l := n.label(ctx); l != "" {
		t.Errorf("node label %s=%q after the uninstall", nodeLabel, l)
	}
	if _, err := os.Lstat(filepath.Join(n.dropinDir, "stockade.toml")); err == nil {
		t.Error("the drop-in is still there after the uninstall")
	}
	if ents, err := os.ReadDir(n.binDir); err != nil || len(ents) != 0 {
		t.Errorf("%s after the uninstall: %v %v", n.binDir, ents, err)
	}
	if n.restarts() == before {
		t.Error("the uninstall removed the drop-in without restarting containerd")
	}
	if handlers := n.handlers(t); slices.Contains(handlers, "stockade") {
		t.Errorf("containerd still has the stockade handler after the uninstall: %v", handlers)
	}
	kube("delete", "-f", manifest, "--wait", "--timeout="+waitTimeout)
}

// installerNode is the node's side of TestInstaller: host directories the
// DaemonSet's hostPath volumes point at instead of /usr/local/bin and
// /etc/containerd, the HOST_EXEC command, and the restarts it asks for.
type installerNode struct {
	t          *testing.T
	c          *Cluster
	dir        string
	binDir     string // BIN_DIR
	confDir    string // the containerd config's directory
	config     string // CONTAINERD_CONFIG
	dropinDir  string // DROPIN_DIR
	agentDir   string // the agent's /var/lib/stockade
	hostExec   string
	mu         sync.Mutex
	nRestarts  int
	stopServe  func()
	origConfig []byte
}

// newInstallerNode turns the node into one without stockade: containerd's
// config moves to the node directory (the harness's path becomes a symlink
// to it, so install.sh's rename-based edits reach containerd), loses the
// stockade runtime and makes runc the default, and the node label goes.
// Its cleanup undoes all of it and restarts containerd with the harness's
// config, whatever state the test left.
func newInstallerNode(t *testing.T, c *Cluster) *installerNode {
	dir := filepath.Join(c.Dir, "installer-node")
	n := &installerNode{
		t:         t,
		c:         c,
		dir:       dir,
		binDir:    filepath.Join(dir, "usr", "local", "bin"),
		confDir:   filepath.Join(dir, "etc", "containerd"),
		dropinDir: filepath.Join(dir, "etc", "containerd", "conf.d"),
		hostExec:  filepath.Join(dir, "host-exec"),
		agentDir:  filepath.Join(dir, "var", "lib", "stockade"),
	}
	n.config = filepath.Join(n.confDir, "config.toml")
	// A previous run of this test in the same cluster: start afresh.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{n.binDir, n.confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	harnessConfig := filepath.Join(c.Env.Dir, "config.toml")
	orig, err := os.ReadFile(harnessConfig)
	if err != nil {
		t.Fatal(err)
	}
	n.origConfig = orig
	stripped, err := withoutStockade(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.config, stripped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.hostExec, []byte(n.hostExecScript()), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(n.restore)
	tmp := harnessConfig + ".installer-link"
	if err := os.Symlink(n.config, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, harnessConfig); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(context.Background(), "label", "node", NodeName, nodeLabel+"-"); err != nil {
		t.Fatal(err)
	}
	if err := n.restartContainerd(); err != nil {
		t.Fatal(err)
	}
	n.serve()
	return n
}

// restore gives the node back as TestMain set it up: no installer files,
// the harness's config, containerd restarted with it, the label.
func (n *installerNode) restore() {
	t := n.t
	if n.stopServe != nil {
		n.stopServe()
	}
	for _, p := range []string{filepath.Join(n.binDir, "containerd-shim-stockade-v1"), filepath.Join(n.binDir, "stockade"),
		filepath.Join(n.dropinDir, "stockade.toml")} {
		if err := os.Remove(p); err == nil {
			t.Logf("cleanup: removed %s, left behind", p)
		}
	}
	harnessConfig := filepath.Join(n.c.Env.Dir, "config.toml")
	tmp := harnessConfig + ".installer-restore"
	if err := os.WriteFile(tmp, n.origConfig, 0o644); err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	if err := os.Rename(tmp, harnessConfig); err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	if err := n.restartContainerd(); err != nil {
		t.Errorf("cleanup: restart containerd with the harness's config: %v", err)
		return
	}
	// No Fatal here: the node label below must be restored whatever this says.
	if handlers, err := n.runtimeHandlers(); err != nil || !slices.Contains(handlers, "stockade") {
		t.Errorf("cleanup: containerd has no stockade handler after the restore: %v %v", handlers, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := n.c.kubectl(ctx, "label", "node", NodeName, nodeLabel+"=true", "--overwrite"); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	// The tests after this one expect a Ready node; the kubelet notices
	// the restarted runtime on its next status sync.
	if _, err := n.c.kubectl(ctx, "wait", "--for=condition=Ready", "node/"+NodeName, "--timeout=120s"); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

func (n *installerNode) restartContainerd() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c.Env.RestartContainerd(ctx)
}

// serve answers the restart requests the HOST_EXEC script leaves in the
// node directory: it restarts the harness's containerd and writes the exit
// status the script's systemctl returns.
func (n *installerNode) serve() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.stopServe = func() { cancel(); <-done }
	req := filepath.Join(n.dir, "restart-request")
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := os.Remove(req); err != nil {
				continue
			}
			status := "0"
			if err := n.restartContainerd(); err != nil {
				n.t.Logf("restart containerd for the installer: %v", err)
				status = "1"
			}
			n.mu.Lock()
			n.nRestarts++
			n.mu.Unlock()
			tmp := filepath.Join(n.dir, "restart-done.tmp")
			if err := os.WriteFile(tmp, []byte(status), 0o644); err == nil {
				_ = os.Rename(tmp, filepath.Join(n.dir, "restart-done"))
			}
		}
	}()
}

func (n *installerNode) restarts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.nRestarts
}

// hostExecScript is what HOST_EXEC runs on the host (through nsenter into
// the host's namespaces, as the shipped default does): systemctl for the
// harness's containerd, everything else as is, with the repo's bin/ (where
// the harness's containerd comes from) on PATH. Every wait is bounded.
func (n *installerNode) hostExecScript() string {
	return fmt.Sprintf(`#!/bin/bash
# HOST_EXEC of TestInstaller (integration/e2e/installer_test.go).
set -u
dir=%q
unit=%q
export PATH=%q:$PATH
if [[ ${1:-} == systemctl ]]; then
	case ${2:-} in
	restart)
		[[ ${3:-} == "$unit" ]] || { echo "systemctl: unknown unit ${3:-}" >&2; exit 5; }
		rm -f "$dir/restart-done"
		: >"$dir/restart-request"
		for _ in $(seq 1200); do
			if [[ -e $dir/restart-done ]]; then
				rc=$(cat "$dir/restart-done")
				rm -f "$dir/restart-done"
				exit "$rc"
			fi
			sleep 0.1
		done
		echo "systemctl: $unit not restarted after 120s" >&2
		exit 1
		;;
	is-active)
		[[ ${3:-} == --quiet && ${4:-} == "$unit" ]] || exit 3
		exec timeout 10 ctr --address %q version >/dev/null 2>&1
		;;
	esac
	echo "systemctl $*: not supported by this test" >&2
	exit 1
fi
exec "$@"
`, n.dir, installerUnit, binDir, n.c.Env.Address)
}

// manifest renders contrib's daemonset.yaml, as shipped, with what an
// operator of this node changes: the image (no registry; the tag is not
// "latest", so the kubelet uses the imported one), the host network (this
// cluster has no kube-proxy, and the API server listens on 127.0.0.1 only,
// so the installer is pointed at it through KUBERNETES_SERVICE_HOST/PORT),
// the host paths (this node's "/usr/local/bin" and "/etc/containerd" are
// directories of the test, mounted under /host at the same path as
// install.sh expects), the node config's directory, and HOST_EXEC and
// CONTAINERD_SERVICE for a containerd that is not a systemd unit.
func (n *installerNode) manifest(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shipped := filepath.Join(repoDir, "contrib", "kubernetes", "installer", "daemonset.yaml")
	out, err := n.c.kubectl(ctx, "create", "--dry-run=client", "-o", "json", "-f", shipped)
	if err != nil {
		t.Fatal(err)
	}
	// One JSON object per document; applied back as a List.
	list := struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}{APIVersion: "v1", Kind: "List"}
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("kubectl's rendering of %s: %v", shipped, err)
		}
		list.Items = append(list.Items, obj)
	}
	stockadeDir := filepath.Dir(n.c.Env.NodeConfig)
	hostPaths := map[string]string{
		"host-bin":            n.binDir,
		"host-etc-stockade":   stockadeDir,
		"host-etc-containerd": n.confDir,
	}
	agentPaths := map[string]string{
		"host-var-log-stockade": n.c.Env.LogDir,
		"host-var-lib-stockade": n.agentDir,
	}
	env := map[string]string{
		"BIN_DIR":            n.binDir,
		"STOCKADE_DIR":       stockadeDir,
		"CONTAINERD_CONFIG":  n.config,
		"DROPIN_DIR":         n.dropinDir,
		"CONTAINERD_SERVICE": installerUnit,
		// The shipped default enters PID 1's namespaces; this VM's PID 1
		// is a sandbox agent whose namespaces even root cannot open
		// (nsenter: cannot open /proc/1/ns/ipc: Permission denied), so the
		// installer enters those of this test process instead, which are
		// the node's: the kubelet and containerd run in them.
		"HOST_EXEC":               fmt.Sprintf("nsenter --target %d --mount --uts --ipc --net --pid -- %s", os.Getpid(), n.hostExec),
		"KUBERNETES_SERVICE_HOST": "127.0.0.1",
		"KUBERNETES_SERVICE_PORT": fmt.Sprint(apiserverPort),
	}
	found := false
	for _, obj := range list.Items {
		if obj["kind"] != "DaemonSet" {
			continue
		}
		found = true
		spec := dig(t, obj, "spec", "template", "spec")
		spec["hostNetwork"] = true
		containers, _ := spec["containers"].([]any)
		if len(containers) != 2 {
			t.Fatalf("the shipped DaemonSet has %d containers, want 2 (installer and agent)", len(containers))
		}
		// Which host path each volume is, and where each container sees it.
		hostPath := map[string]string{}
		mounts := map[string]bool{}
		for _, c := range containers {
			ctr := c.(map[string]any)
			ctr["image"] = installerImage
			vars, _ := ctr["env"].([]any)
			for _, k := range sortedKeys(env) {
				if ctr["name"] == "agent" && !strings.HasPrefix(k, "KUBERNETES_") {
					continue
				}
				vars = append(vars, map[string]any{"name": k, "value": env[k]})
			}
			ctr["env"] = vars
			for _, m := range ctr["volumeMounts"].([]any) {
				m := m.(map[string]any)
				name := m["name"].(string)
				switch ctr["name"] {
				case "installer":
					p, ok := hostPaths[name]
					if !ok {
						t.Fatalf("the shipped installer mounts %v, which this test does not know", name)
					}
					m["mountPath"] = "/host" + p
					hostPath[name] = p
				case "agent":
					// The agent sees the host's directories where the node
					// config has them; here they are the harness's.
					p, ok := agentPaths[name]
					if !ok {
						t.Fatalf("the shipped agent mounts %v, which this test does not know", name)
					}
					hostPath[name] = p
				default:
					t.Fatalf("the shipped DaemonSet has a container %v this test does not know", ctr["name"])
				}
				mounts[name] = true
			}
		}
		for _, v := range spec["volumes"].([]any) {
			v := v.(map[string]any)
			p, ok := hostPath[v["name"].(string)]
			if !ok {
				t.Fatalf("the shipped DaemonSet has volume %v, which no container mounts", v["name"])
			}
			v["hostPath"].(map[string]any)["path"] = p
		}
		if len(mounts) != len(hostPaths)+len(agentPaths) {
			t.Fatalf("the shipped DaemonSet mounts %v, want %v and %v", mounts, hostPaths, agentPaths)
		}
	}
	if !found {
		t.Fatalf("%s has no DaemonSet", shipped)
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(n.dir, "installer.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func dig(t *testing.T, obj map[string]any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		next, ok := obj[k].(map[string]any)
		if !ok {
			t.Fatalf("no %q in the shipped DaemonSet", strings.Join(keys, "."))
		}
		obj = next
	}
	return obj
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// label is the node's stockade label, "" when absent.
func (n *installerNode) label(ctx context.Context) string {
	out, err := n.c.kubectl(ctx, "get", "node", NodeName, "-o", `jsonpath={.metadata.labels.stockade\.dev/enabled}`)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSpace(out)
}

// handlers are the runtime handlers containerd's CRI reports.
func (n *installerNode) handlers(t *testing.T) []string {
	t.Helper()
	names, err := n.runtimeHandlers()
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// runtimeHandlers lists the runtime handlers containerd's CRI reports.
func (n *installerNode) runtimeHandlers() ([]string, error) {
	conn, err := n.c.Env.DialCRI()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI status: %w", err)
	}
	var names []string
	for _, h := range resp.GetRuntimeHandlers() {
		names = append(names, h.GetName())
	}
	return names, nil
}

// crashed matches the installer's container having died: install.sh
// failed, and waiting longer would not help. Only that container counts:
// the agent container of the same pod may be restarted once when its
// start races with the installer's restart of containerd.
var crashed = regexp.MustCompile(`[1-9]`)

// waitFor retries fn for up to three minutes, and stops early when the
// installer pod restarted (install.sh exited with an error) or the cluster
// broke.
func (n *installerNode) waitFor(what string, fn func() error) {
	t := n.t
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after 3m: %v", what, err)
		}
		// Not during a restart, when containerd is down on purpose.
		n.mu.Lock()
		herr := n.c.Healthy()
		n.mu.Unlock()
		if herr != nil {
			t.Fatalf("%s: cluster broke: %v", what, herr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		restarts, _ := n.c.kubectl(ctx, "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=stockade-installer",
			"-o", `jsonpath={.items[*].status.containerStatuses[?(@.name=="installer")].restartCount}`)
		cancel()
		if crashed.MatchString(restarts) {
			t.Fatalf("%s: the installer's container restarted (%s): install.sh failed", what, restarts)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// importTarball imports an OCI layout tarball into CRI's namespace and
// unpacks it, as `ctr -n k8s.io images import` would.
func importTarball(ctx context.Context, env *harness.Env, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx = namespaces.WithNamespace(ctx, "k8s.io")
	imgs, err := env.Client.Import(ctx, f)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	for _, img := range imgs {
		if err := client.NewImage(env.Client, img).Unpack(ctx, harness.Snapshotter); err != nil {
			return fmt.Errorf("unpack %s: %w", img.Name, err)
		}
	}
	return nil
}

func assertSameFile(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatalf("not installed: %v", err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s differs from %s", got, want)
	}
}

// withoutStockade returns the harness's containerd config without the
// stockade runtime table, with runc as the default runtime: a node before
// the install. It checks the result parses and has neither.
func withoutStockade(cfg []byte) ([]byte, error) {
	var out []string
	skipping := false
	header := regexp.MustCompile(`^\s*\[`)
	for _, line := range strings.Split(string(cfg), "\n") {
		if header.MatchString(line) {
			skipping = strings.Contains(line, ".containerd.runtimes.stockade]") || strings.Contains(line, ".containerd.runtimes.stockade.")
		}
		if skipping {
			continue
		}
		if strings.Contains(line, "default_runtime_name") {
			line = regexp.MustCompile(`=.*`).ReplaceAllString(line, `= "runc"`)
		}
		out = append(out, line)
	}
	res := []byte(strings.Join(out, "\n"))
	var parsed map[string]any
	if err := toml.Unmarshal(res, &parsed); err != nil {
		return nil, fmt.Errorf("the config without stockade does not parse: %w", err)
	}
	if bytes.Contains(res, []byte("runtimes.stockade")) || !bytes.Contains(res, []byte(`default_runtime_name = "runc"`)) {
		return nil, fmt.Errorf("could not take stockade out of the harness's config:\n%s", res)
	}
	return res, nil
}
