package cri

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
)

// TestRecordReplicasThenEnforce is record mode as a cluster uses it: two
// replicas of a Deployment are recorded under one workload (derived from
// their pod names) and merge into one profile, including what a "kubectl
// exec" ran in one of them; a third replica, on a node that enforces
// recorded profiles, is held to it without any annotation.
func TestRecordReplicasThenEnforce(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	storeDir := t.TempDir()
	orig, err := os.ReadFile(env.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(env.NodeConfig, orig, 0o644) })
	setRecord := func(keys string) {
		cfg := string(orig) + "\n[record]\nstore_dir = \"" + storeDir + "\"\n" + keys + "\n"
		if err := os.WriteFile(env.NodeConfig, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setRecord("allow = true")

	record := map[string]string{"stockade.dev/seccomp-mode": "record"}
	for i, name := range []string{"recweb-7c9d8f6b5-x2k4p", "recweb-7c9d8f6b5-q7w2z"} {
		p, err := runPod(t, env, podConfig(env, name, record))
		if err != nil {
			t.Fatal(err)
		}
		id := p.start("app", "sh", "-c", "echo hi > /tmp/f; cat /tmp/f; sleep 3600")
		if i == 0 {
			// What an exec runs is the workload's too.
			if out := p.mustExec(id, "probe", "getpriority"); !strings.Contains(out, "getpriority ok") {
				t.Fatalf("exec under record mode: %q", out)
			}
		}
		if err := p.teardown(); err != nil {
			t.Fatal(err)
		}
	}
	store, err := profilestore.Open(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	name := recorded.Name{Namespace: podNamespace, Workload: "recweb", Container: "app"}
	prof, err := store.Load(name)
	if err != nil {
		t.Fatalf("the replicas' profile: %v", err)
	}
	if prof.Runs != 2 {
		t.Errorf("runs = %d, want 2 (one per replica)", prof.Runs)
	}
	if !slices.Contains(prof.Names(), "getpriority") {
		t.Errorf("getpriority from the exec not in the merged profile: %v", prof.Names())
	}
	if slices.Contains(prof.Names(), "uname") {
		t.Fatalf("uname recorded; the test needs a call the workload never makes: %v", prof.Names())
	}
	if len(prof.Images) != 1 || prof.Images[0].Digest == "" {
		t.Errorf("images %+v, want the busybox image with its digest", prof.Images)
	}

	// A third replica on a node that enforces recorded profiles.
	setRecord("enforce_recorded = true")
	p, err := runPod(t, env, podConfig(env, "recweb-7c9d8f6b5-z9k2m", nil))
	if err != nil {
		t.Fatal(err)
	}
	id := p.start("app", "sh", "-c", "echo hi > /tmp/f; cat /tmp/f; sleep 3600")
	if out := p.mustExec(id, "probe", "getpriority"); !strings.Contains(out, "getpriority ok") {
		t.Errorf("recorded call under the profile: %q", out)
	}
	out, err := p.execSync(id, 30*time.Second, "probe", "uname")
	if err != nil || !strings.Contains(string(out.Stdout), "uname errno=EPERM") {
		t.Errorf("a call never recorded: %v, %q %q", err, out.GetStdout(), out.GetStderr())
	}
	// The sandbox is not held to the workload's profile: the pod runs.
	if st, _, err := p.sandboxStatus(); err != nil || st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox: %v, %v", st.GetState(), err)
	}
}
