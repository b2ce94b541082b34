package cri

import (
	"bytes"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// TestExecSync checks ExecSync as exec probes use it: separate stdout and
// stderr, the exit code, large output intact.
func TestExecSync(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	id := p.start("main", "sleep", "3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)

	out, err := p.execSync(id, 30*time.Second, "sh", "-c", "echo to-out; echo to-err >&2; exit 7")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if out.ExitCode != 7 || string(out.Stdout) != "to-out\n" || string(out.Stderr) != "to-err\n" {
		t.Errorf("exec: exit %d stdout %q stderr %q; want 7, %q, %q", out.ExitCode, out.Stdout, out.Stderr, "to-out\n", "to-err\n")
	}

	// 4 MiB: many pipe buffers, so the shim's copy must not drop or
	// reorder anything before the exit is reported.
	const size = 4 << 20
	out, err = p.execSync(id, 30*time.Second, "sh", "-c", "head -c 4194304 /dev/zero | tr '\\0' a")
	if err != nil {
		t.Fatalf("exec with large output: %v", err)
	}
	if out.ExitCode != 0 || len(out.Stdout) != size || bytes.Count(out.Stdout, []byte("a")) != size {
		t.Errorf("large exec output: exit %d, %d bytes, want %d bytes of 'a'", out.ExitCode, len(out.Stdout), size)
	}

	// An exec of a missing binary fails as the runc shim reports it.
	out, err = p.execSync(id, 30*time.Second, "/no/such/binary")
	if err == nil && out.ExitCode == 0 {
		t.Error("exec of a missing binary succeeded")
	}
}

// TestExecSyncTimeout checks that an exec probe that overruns its timeout
// is reported as such and its process does not linger in the container.
func TestExecSyncTimeout(t *testing.T) {
	env := harness.Get(t)
	p := mustRunPod(t, env, uniqueName(t, ""))
	id := p.start("main", "sleep", "3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)

	began := time.Now()
	out, err := p.execSync(id, time.Second, "sleep", "77")
	took := time.Since(began)
	if err == nil {
		t.Fatalf("exec outran its 1s timeout without an error: exit %d", out.ExitCode)
	}
	if !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("exec timeout error %q does not say it timed out", err)
	}
	if took > 20*time.Second {
		t.Errorf("exec with a 1s timeout returned after %v", took)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps := p.mustExec(id, "ps", "-o", "args")
		if !strings.Contains(ps, "sleep 77") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timed-out exec is still running:\n%s", ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
