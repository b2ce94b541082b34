package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// uidMap returns the first line of a container's /proc/self/uid_map as
// (inside, outside, count).
func uidMap(t *testing.T, k *K, pod string) (inside, outside, count string) {
	t.Helper()
	f := strings.Fields(k.mustExec(pod, "cat", "/proc/self/uid_map"))
	if len(f) < 3 {
		t.Fatalf("uid_map %q", f)
	}
	return f[0], f[1], f[2]
}

// hostUsers: false gives the pod a user namespace of 65536 IDs whose root is
// not the host's root, under either runtime; files it writes to a volume
// are its own.
func TestHostUsersFalse(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("p", "echo written > /data/f; exec sleep 3600", "volumeMounts: [{name: data, mountPath: /data}]",
			"hostUsers: false\nvolumes: [{name: data, emptyDir: {}}]")
		k.waitReady("p")
		in, out, n := uidMap(t, k, "p")
		if in != "0" || out == "0" || n != "65536" {
			t.Errorf("uid_map %s %s %s, want 0 <host id other than 0> 65536", in, out, n)
		}
		if got := k.mustExec("p", "id", "-u"); strings.TrimSpace(got) != "0" {
			t.Errorf("id -u %q, want 0 inside the namespace", got)
		}
		if got := k.mustExec("p", "stat", "-c", "%u", "/data/f"); strings.TrimSpace(got) != "0" {
			t.Errorf("file written by root owned by %q inside the namespace", got)
		}
	})
}

// Without hostUsers: false, runc runs the pod in the host's user namespace;
// stockade gives it one anyway (README, "User namespaces").
func TestUserNamespaceByDefault(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("p", sleeper, "", "")
		k.waitReady("p")
		in, out, n := uidMap(t, k, "p")
		switch k.Class {
		case "runc":
			if in != "0" || out != "0" || n != "4294967295" {
				t.Errorf("runc: uid_map %s %s %s, want the identity map", in, out, n)
			}
		case "stockade":
			if in != "0" || out == "0" || n != "65536" {
				t.Errorf("stockade: uid_map %s %s %s, want 0 <host id other than 0> 65536", in, out, n)
			}
		}
	})
}

// runAsUser, runAsGroup, fsGroup, readOnlyRootFilesystem, no privilege
// escalation and dropping every capability behave as Kubernetes says.
func TestSecurityContext(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("p", sleeper, `
volumeMounts: [{name: data, mountPath: /data}]
securityContext:
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}`, `
securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}
volumes: [{name: data, emptyDir: {}}]`)
		k.waitReady("p")
		checks := []struct{ cmd, want string }{
			{"id -u", "1000"},
			{"id -g", "3000"},
			{"stat -c %g /data", "2000"},
			{"touch /data/f && stat -c %u:%g /data/f", "1000:2000"},
			{"grep CapEff /proc/self/status | cut -f2", "0000000000000000"},
			{"grep CapBnd /proc/self/status | cut -f2", "0000000000000000"},
			{"grep NoNewPrivs /proc/self/status | cut -f2", "1"},
		}
		for _, c := range checks {
			out, err := k.exec("p", "sh", "-c", c.cmd)
			if err != nil || strings.TrimSpace(out) != c.want {
				t.Errorf("%s: %q (%v), want %q", c.cmd, strings.TrimSpace(out), err, c.want)
			}
		}
		if got := k.mustExec("p", "id", "-G"); !strings.Contains(" "+got+" ", " 2000") {
			t.Errorf("supplementary groups %q lack fsGroup 2000", got)
		}
		if out, err := k.exec("p", "touch", "/rootfs-write"); err == nil || !strings.Contains(err.Error(), "Read-only file system") {
			t.Errorf("write to a read-only root: %q, %v", out, err)
		}
	})
}

// netAdmin is a pod adding NET_ADMIN and creating a bridge in its network
// namespace (this kernel has no dummy links).
func netAdmin(k *K, hostUsers bool) {
	spec := ""
	if !hostUsers {
		spec = "hostUsers: false"
	}
	k.pod("p", sleeper, "securityContext: {capabilities: {add: [NET_ADMIN]}}", spec)
}

const addLink = "ip link add e2etest type bridge && ip link set e2etest up && ip link del e2etest && echo ok"

// NET_ADMIN in the host's user namespace: runc grants it; stockade refuses
// it by design, since the pod's network namespace belongs to the host's
// user namespace and a remapped pod could not use it anyway.
func TestNetAdmin(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		netAdmin(k, true)
		if k.Class == "runc" {
			k.waitReady("p")
			if out := k.mustExec("p", "sh", "-c", addLink); strings.TrimSpace(out) != "ok" {
				t.Fatalf("ip link add: %q", out)
			}
			return
		}
		// stockade: the container must fail with an error naming the
		// capability, never run without it.
		k.eventually("refusal naming NET_ADMIN", func() error {
			if ready := k.jsonpath("pod/p", "{.status.containerStatuses[0].ready}"); ready == "true" {
				out, err := k.exec("p", "sh", "-c", addLink)
				t.Fatalf("a stockade pod with NET_ADMIN and host users runs (ip link add: %q, %v)", out, err)
			}
			msg := k.jsonpath("pod/p", "{.status.containerStatuses[0].state.waiting.message}{.status.containerStatuses[0].state.terminated.message}")
			if !strings.Contains(msg, "NET_ADMIN") {
				return fmt.Errorf("container status message %q", msg)
			}
			return nil
		})
	})
}

// NET_ADMIN with hostUsers: false works under both: the network namespace
// then belongs to the pod's user namespace.
func TestNetAdminHostUsersFalse(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		netAdmin(k, false)
		k.waitReady("p")
		if out, err := k.exec("p", "sh", "-c", addLink); err != nil || strings.TrimSpace(out) != "ok" {
			t.Fatalf("ip link add: %q, %v", out, err)
		}
	})
}

// Creating a user namespace needs CAP_SYS_ADMIN under RuntimeDefault; a
// pod without it gets EPERM under both runtimes.
func TestSeccompRuntimeDefault(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("p", sleeper, "securityContext: {seccompProfile: {type: RuntimeDefault}}", "")
		k.waitReady("p")
		out, err := k.exec("p", "unshare", "-U", "true")
		if err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
			t.Fatalf("unshare -U under RuntimeDefault: %q, %v; want EPERM", out, err)
		}
	})
}

// Unconfined: runc applies no filter, so unshare -U succeeds; stockade keeps
// its generated profile unless the namespace is listed in
// seccomp.unconfined_namespaces (README, "Seccomp").
func TestSeccompUnconfined(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		k.pod("p", sleeper, "securityContext: {seccompProfile: {type: Unconfined}}", "")
		k.waitReady("p")
		if got := strings.TrimSpace(k.mustExec("p", "sh", "-c", "grep Seccomp: /proc/self/status | cut -f2")); (k.Class == "runc") != (got == "0") {
			t.Errorf("%s: Seccomp mode %q under Unconfined", k.Class, got)
		}
		out, err := k.exec("p", "unshare", "-U", "true")
		switch k.Class {
		case "runc":
			if err != nil {
				t.Fatalf("runc: unshare -U under Unconfined: %q, %v", out, err)
			}
		case "stockade":
			if err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
				t.Fatalf("stockade: unshare -U under Unconfined: %q, %v; want EPERM", out, err)
			}
		}
	})
}

// A Localhost profile denying mkdir: runc applies it as is, stockade
// intersects it with its baseline; either way mkdir fails with EPERM while
// the rest of the container works.
func TestSeccompLocalhost(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		rel := filepath.Join("e2e", k.NS+".json")
		path := filepath.Join(k.c.SeccompDir(), rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`
		if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
		k.pod("p", sleeper, fmt.Sprintf("securityContext: {seccompProfile: {type: Localhost, localhostProfile: %q}}", rel), "")
		k.waitReady("p")
		out, err := k.exec("p", "mkdir", "/tmp/d")
		if err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
			t.Fatalf("mkdir under a profile denying it: %q, %v; want EPERM", out, err)
		}
		if got := k.mustExec("p", "sh", "-c", "touch /tmp/f && echo ok"); strings.TrimSpace(got) != "ok" {
			t.Fatalf("touch: %q", got)
		}
	})
}
