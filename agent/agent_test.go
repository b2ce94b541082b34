package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// The shims never talk to the API server, and a shim is started for every
// pod: client-go and the Prometheus client must stay out of its binary. So
// must the YAML encoder, which only the CLI's SPO export
// (profiles/recorded/spo) needs: it alone was ~350 KB of text and rodata,
// resident in every pod's shim.
func TestShimDoesNotLinkTheAgent(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go toolchain to list the shim's dependencies: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-tags", "seccomp", "-deps", "github.com/stockade-dev/stockade/cmd/containerd-shim-stockade-v1").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list found only %d dependencies of the shim: %q", len(deps), out)
	}
	for _, d := range deps {
		for _, banned := range []string{"k8s.io/client-go/", "github.com/prometheus/client_golang/", "go.yaml.in/yaml/", "github.com/stockade-dev/stockade/agent"} {
			if strings.HasPrefix(d, banned) || d == strings.TrimSuffix(banned, "/") {
				t.Errorf("the shim links %s", d)
			}
		}
	}
}
