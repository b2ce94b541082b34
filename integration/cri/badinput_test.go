package cri

import (
	"os"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
)

// TestBadPodAnnotations checks that a pod whose stockade.dev/* annotations
// stockade cannot honour does not run — a typo must not leave a pod less
// isolated than its author believes — that the error the kubelet shows
// (kubectl describe) names the annotation, and that the failed pod leaves
// nothing behind.
//
// The annotations reach the shim because the handler's pod_annotations
// allows stockade.dev/*: CRI copies them into the sandbox's and every
// container's spec, so RunPodSandbox is the first call that can fail.
func TestBadPodAnnotations(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		mentions    []string
	}{
		{"unknown-key", map[string]string{"stockade.dev/bogus": "x"}, []string{"stockade.dev/bogus"}},
		{"bad-seccomp-mode", map[string]string{"stockade.dev/seccomp-mode": "nonsense"}, []string{"stockade.dev/seccomp-mode", "nonsense"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotHost(t, env)
			cfg := podConfig(env, uniqueName(t, ""), tc.annotations)
			p, err := runPod(t, env, cfg)
			if err == nil {
				// CRI passed the sandbox: the container must be refused.
				_, err = p.create("main", "sleep", "3600")
				if err == nil {
					t.Fatalf("pod with %v and its container were created", tc.annotations)
				}
				if terr := p.teardown(); terr != nil {
					t.Errorf("tear down refused pod: %v", terr)
				}
			}
			for _, m := range tc.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			assertNothingNew(t, env, before)
			if err := removeCgroup(cfg.Linux.CgroupParent); err != nil {
				t.Errorf("pod cgroup: %v", err)
			}
		})
	}
}

// TestAllowedAnnotationRuns is the control for TestBadPodAnnotations: a
// valid stockade.dev/* annotation is refused, naming the node config key,
// unless the node allows it, and then does not stop a pod.
func TestAllowedAnnotationRuns(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	ann := map[string]string{"stockade.dev/seccomp-mode": "complain"}
	if _, err := runPod(t, env, podConfig(env, uniqueName(t, "refused"), ann)); err == nil ||
		!strings.Contains(err.Error(), "seccomp.allow_mode_annotation") {
		t.Fatalf("mode annotation on a node that does not allow it: %v", err)
	}
	// Each pod has a shim of its own, which reads the node config when the
	// pod's sandbox is created.
	orig, err := os.ReadFile(env.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env.NodeConfig, append(append([]byte{}, orig...), "\n[seccomp]\nallow_mode_annotation = true\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(env.NodeConfig, orig, 0o644)
	p, err := runPod(t, env, podConfig(env, uniqueName(t, ""), ann))
	if err != nil {
		t.Fatal(err)
	}
	id := p.start("main", "sleep", "3600")
	if out := p.mustExec(id, "echo", "ok"); out != "ok\n" {
		t.Errorf("exec: %q", out)
	}
}
