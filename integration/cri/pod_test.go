package cri

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// TestPodLifecycle runs one pod the way the kubelet does and checks what
// the pod's container sees of its pod: address, hostname, DNS and hosts
// files, termination log, logs; then removes it and checks the host.
func TestPodLifecycle(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))

	st, info, err := p.sandboxStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod state %v, want ready", st.State)
	}
	if info.RuntimeType != env.Runtime {
		t.Errorf("pod runs on runtime type %q, want %q", info.RuntimeType, env.Runtime)
	}
	_, subnet, err := net.ParseCIDR(env.PodSubnet())
	if err != nil {
		t.Fatal(err)
	}
	podIP := st.GetNetwork().GetIp()
	if ip := net.ParseIP(podIP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q is not in the test bridge's subnet %s", podIP, subnet)
	}

	id := p.start("main", "sh", "-c", "echo hello from $POD_NAME; echo to stderr >&2; echo all done > /dev/termination-log; exec sleep 3600")
	cs := p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	wantLog := filepath.Join(p.Config.LogDirectory, "main", "0.log")
	if cs.LogPath != wantLog {
		t.Errorf("log path %q, want %q", cs.LogPath, wantLog)
	}

	// The container sees the pod's network namespace, name and files.
	if out := p.mustExec(id, "hostname"); strings.TrimSpace(out) != p.Config.Hostname {
		t.Errorf("hostname %q, want %q", out, p.Config.Hostname)
	}
	if out := p.mustExec(id, "cat", "/proc/net/fib_trie"); !strings.Contains(out, podIP) {
		t.Errorf("the container's network namespace lacks the pod IP %s:\n%s", podIP, out)
	}
	resolv := p.mustExec(id, "cat", "/etc/resolv.conf")
	for _, want := range []string{"nameserver 198.18.255.10", "search " + podNamespace + ".svc.cluster.local", "options ndots:5"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("/etc/resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if hosts := p.mustExec(id, "cat", "/etc/hosts"); !strings.Contains(hosts, podIP+"\t"+p.Config.Hostname) {
		t.Errorf("/etc/hosts is not the kubelet's file:\n%s", hosts)
	}
	if out := p.mustExec(id, "sh", "-c", "grep Seccomp: /proc/1/status"); !strings.Contains(out, "2") {
		t.Errorf("RuntimeDefault seccomp: container init has %q, want mode 2 (filter)", strings.TrimSpace(out))
	}
	// Masked paths read empty (/dev/null is bound over them); which of them
	// exist depends on the kernel, so the test picks one the host has.
	if masked := hostProcFile(kubeletMaskedPaths); masked != "" {
		if out := p.mustExec(id, "sh", "-c", "wc -c < "+masked); strings.TrimSpace(out) != "0" {
			t.Errorf("%s not masked: %s bytes", masked, strings.TrimSpace(out))
		}
	}

	waitLog(t, wantLog, func(lines []logLine) bool {
		return hasLine(lines, "stdout", "hello from "+p.Config.Metadata.Name) && hasLine(lines, "stderr", "to stderr")
	})
	term, err := os.ReadFile(filepath.Join(p.KubeletDir, "containers", "main", "termination-log"))
	if err != nil || string(term) != "all done\n" {
		t.Errorf("termination log %q (%v), want %q", term, err, "all done\n")
	}

	fp := capture(t, p)
	if err := p.teardown(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, env, fp)
}

// TestContainerExitCodes checks that ContainerStatus reports how containers
// ended: the kubelet restarts, reports and back-offs on these fields.
func TestContainerExitCodes(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	failed := p.start("fails", "sh", "-c", "echo about to fail; exit 3")
	ok := p.start("succeeds", "true")
	// sleep is the PID namespace's init and ignores SIGTERM, so the stop
	// escalates to SIGKILL after the grace period, as for many real images.
	killed := p.start("killed", "sleep", "3600")
	p.waitState(killed, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
	ctx, cancel := contextWithTimeout()
	defer cancel()
	if _, err := p.rs.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: killed, Timeout: 1}); err != nil {
		t.Fatalf("stop container: %v", err)
	}

	for _, c := range []struct {
		id     string
		code   int32
		reason string
	}{
		{failed, 3, "Error"},
		{ok, 0, "Completed"},
		{killed, 137, "Error"},
	} {
		st := p.waitState(c.id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
		name := st.Metadata.GetName()
		if st.ExitCode != c.code || st.Reason != c.reason {
			t.Errorf("%s: exit code %d reason %q, want %d %q", name, st.ExitCode, st.Reason, c.code, c.reason)
		}
		// containerd's CRI stamps StartedAt with its own clock after the
		// Start RPC has returned, but FinishedAt is the shim's exit time: a
		// process that exits within the RPC's return trip seems to finish
		// up to that trip before it started, whatever the runtime. The shim
		// records no exit before its Start has returned (ExitBarrier).
		const rpcReturnTrip = int64(5 * time.Millisecond)
		if st.StartedAt == 0 || st.FinishedAt < st.StartedAt-rpcReturnTrip {
			t.Errorf("%s: started %d finished %d", name, st.StartedAt, st.FinishedAt)
		}
	}
	waitLog(t, filepath.Join(p.Config.LogDirectory, "fails", "0.log"), func(lines []logLine) bool {
		return hasLine(lines, "stdout", "about to fail")
	})
}

// TestCRILogFormat checks the log file the kubelet reads for kubectl logs:
// every line in CRI format, streams kept apart, long lines split into
// partial (P) pieces that join to the original.
func TestCRILogFormat(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	// 40000 bytes is more than twice max_container_log_line_size (16 KiB).
	id := p.start("logger", "sh", "-c",
		"echo first; echo oops >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; echo last; echo bye >&2")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
	path := filepath.Join(p.Config.LogDirectory, "logger", "0.log")
	lines := waitLog(t, path, func(lines []logLine) bool { return hasLine(lines, "stderr", "bye") })

	joined := map[string][]string{}
	var partial = map[string]string{}
	last := map[string]time.Time{}
	sawPartial := false
	for _, l := range lines {
		if l.Time.Before(last[l.Stream]) {
			t.Errorf("%s timestamps go backwards: %v after %v", l.Stream, l.Time, last[l.Stream])
		}
		last[l.Stream] = l.Time
		partial[l.Stream] += l.Content
		if l.Partial {
			sawPartial = true
			continue
		}
		joined[l.Stream] = append(joined[l.Stream], partial[l.Stream])
		partial[l.Stream] = ""
	}
	want := map[string][]string{
		"stdout": {"first", strings.Repeat("x", 40000), "last"},
		"stderr": {"oops", "bye"},
	}
	for stream, w := range want {
		if strings.Join(joined[stream], "\n") != strings.Join(w, "\n") {
			t.Errorf("%s lines: got %d lines %.200q, want %d lines", stream, len(joined[stream]), joined[stream], len(w))
		}
	}
	if !sawPartial {
		t.Error("a 40000-byte line was not split into partial (P) lines")
	}
}

// TestReopenContainerLog follows the kubelet's log rotation: rename the
// file, ReopenContainerLog, and the container's output goes on in a new one.
func TestReopenContainerLog(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	id := p.start("ticker", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done")
	path := filepath.Join(p.Config.LogDirectory, "ticker", "0.log")
	waitLog(t, path, func(lines []logLine) bool { return len(lines) >= 3 })
	if err := os.Rename(path, path+".20260101-000000"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout()
	defer cancel()
	if _, err := p.rs.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("reopen container log: %v", err)
	}
	waitLog(t, path, func(lines []logLine) bool { return len(lines) >= 3 })
}

// hostProcFile returns the first of paths that is a non-empty readable
// file on the host, or "".
func hostProcFile(paths []string) string {
	for _, p := range paths {
		// One byte says it: /proc/kcore reports a size of 128 TiB, which
		// os.ReadFile would try to allocate.
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		n, _ := f.Read(make([]byte, 1))
		f.Close()
		if n > 0 {
			return p
		}
	}
	return ""
}

// waitLog polls a CRI log file until cond holds and returns its lines.
func waitLog(t testing.TB, path string, cond func([]logLine) bool) []logLine {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines, err := readCRILog(path)
		if err == nil && cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(path)
			t.Fatalf("log %s (%v) never matched:\n%.2000s", path, err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasLine(lines []logLine, stream, content string) bool {
	for _, l := range lines {
		if l.Stream == stream && !l.Partial && l.Content == content {
			return true
		}
	}
	return false
}
