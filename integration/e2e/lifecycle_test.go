package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Exec and HTTP readiness probes make a pod Ready; a failing exec liveness
// probe restarts its container.
func TestProbes(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("healthy", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www", `
readinessProbe:
  httpGet: {path: /healthz, port: 8080}
  periodSeconds: 1
livenessProbe:
  exec: {command: ["cat", "/www/healthz"]}
  initialDelaySeconds: 1
  periodSeconds: 1`, "")
		k.pod("dying", "touch /tmp/alive; exec sleep 3600", `
livenessProbe:
  exec: {command: ["sh", "-c", "test -e /tmp/alive && rm /tmp/alive"]}
  periodSeconds: 1
  failureThreshold: 1`, "")
		k.waitReady("healthy")
		// The probe passes once, then fails: the kubelet must kill and
		// restart the container.
		k.eventually("liveness restart", func() error {
			n := k.jsonpath("pod/dying", "{.status.containerStatuses[0].restartCount}")
			if c, _ := strconv.Atoi(n); c < 1 {
				return fmt.Errorf("restartCount %q", n)
			}
			return nil
		})
		if n := k.jsonpath("pod/healthy", "{.status.containerStatuses[0].restartCount}"); n != "0" {
			t.Errorf("healthy pod restarted %s times", n)
		}
	})
}

// An init container writes into an emptyDir, the app container reads it
// together with a configMap volume, and writes into the emptyDir itself.
func TestInitContainersAndVolumes(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.apply(`apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  greeting: hello-from-configmap
---
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  runtimeClassName: {{CLASS}}
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  initContainers:
  - name: first
    image: {{IMAGE}}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo from-init-1 > /work/init"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: {{IMAGE}}
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /work/init > /work/init2 && echo from-init-2 >> /work/init2"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: {{IMAGE}}
    imagePullPolicy: Never
    command: ["sh", "-c", "echo from-main > /work/main && exec sleep 3600"]
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: cfg, mountPath: /etc/cfg, readOnly: true}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
`)
		k.waitReady("p")
		if got := k.mustExec("p", "cat", "/work/init2", "/work/main", "/etc/cfg/greeting"); got != "from-init-1\nfrom-init-2\nfrom-main\nhello-from-configmap" {
			t.Errorf("volume contents %q", got)
		}
		if _, err := k.exec("p", "sh", "-c", "echo x > /etc/cfg/greeting"); err == nil {
			t.Errorf("a read-only configMap volume was written")
		}
		for i, want := range []string{"0", "0"} {
			if got := k.jsonpath("pod/p", fmt.Sprintf("{.status.initContainerStatuses[%d].state.terminated.exitCode}", i)); got != want {
				t.Errorf("init container %d exit code %q, want %s", i, got, want)
			}
		}
	})
}

// A container over its memory limit is OOM-killed and the pod status says
// so.
func TestOOMKilled(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		// dd reads 200 MiB from /dev/zero into one buffer, touching every
		// page of it.
		k.pod("oom", "exec dd if=/dev/zero of=/dev/null bs=200M count=1", `
resources:
  limits: {memory: 32Mi}`, "restartPolicy: Never")
		k.waitPhase("oom", "Failed")
		reason := k.jsonpath("pod/oom", "{.status.containerStatuses[0].state.terminated.reason}")
		code := k.jsonpath("pod/oom", "{.status.containerStatuses[0].state.terminated.exitCode}")
		if reason != "OOMKilled" || code != "137" {
			t.Fatalf("terminated: reason %q exit code %s, want OOMKilled 137", reason, code)
		}
	})
}

// Deleting a pod runs its preStop hook first, then sends SIGTERM to the
// container, which may finish its work within the grace period. Both leave
// a line in a hostPath file that outlives the pod.
func TestGracefulTermination(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		dir := t.TempDir()
		// The container may run as a remapped root: the file must be
		// writable by anyone.
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		k.pod("p", "trap 'echo term >> /out/log; sleep 1; echo done >> /out/log; exit 0' TERM; echo start >> /out/log; while true; do sleep 0.2; done", `
volumeMounts: [{name: out, mountPath: /out}]
lifecycle:
  preStop:
    exec: {command: ["sh", "-c", "echo prestop >> /out/log"]}`, fmt.Sprintf(`volumes: [{name: out, hostPath: {path: %q, type: Directory}}]`, dir))
		k.waitReady("p")
		start := time.Now()
		k.must("delete", "pod", "p", "--grace-period=10", "--timeout="+waitTimeout)
		took := time.Since(start)
		data, err := os.ReadFile(filepath.Join(dir, "log"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(data)); got != "start\nprestop\nterm\ndone" {
			t.Fatalf("log %q, want start, prestop, term, done (delete took %v)", got, took)
		}
	})
}
