package task

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
)

// The shim binary reports stockade's own version and revision for -v (not
// containerd's, which the shim framework would print), and so does -info,
// which containerd reads.
func TestShimReportsItsVersion(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	shim := filepath.Join(env.BinDir, "containerd-shim-stockade-v1")
	out, err := exec.Command(shim, "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -v: %v: %s", shim, err, out)
	}
	if !regexp.MustCompile(`(?m)^  Version:  \d+\.\d+\.\d+\S*\n  Revision: [0-9a-f]{40}`).Match(out) {
		t.Errorf("-v printed %q, want stockade's version and a 40-hex revision", out)
	}
	info, err := exec.Command(shim, "-info").Output()
	if err != nil {
		t.Fatalf("%s -info: %v", shim, err)
	}
	if !regexp.MustCompile(`[0-9a-f]{40}`).Match(info) {
		t.Errorf("-info carries no revision: %q", info)
	}
}
