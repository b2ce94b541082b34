// Package roottest holds what unit tests that need root share: the switch
// that turns "skipped, not root" into a failure where root is expected
// (make test sets STOCKADE_REQUIRE_ROOT=1, so CI cannot pass a root test
// by skipping it), and a helper process held in fresh namespaces.
package roottest

import (
	"io"
	"os"
	"os/exec"
	"testing"
)

// Require skips t unless it runs as root, or fails it when
// STOCKADE_REQUIRE_ROOT=1 says root was expected.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STOCKADE_REQUIRE_ROOT") == "1" {
		t.Fatalf("needs root (%s), and STOCKADE_REQUIRE_ROOT=1", why)
	}
	t.Skipf("needs root (%s); make test runs it as root", why)
}

// StartBlocked starts cmd with stdin on a pipe, so it waits until the pipe
// closes (a helper that holds namespaces open); stop ends it. A kernel that
// refuses cmd's namespaces skips t.
func StartBlocked(t testing.TB, cmd *exec.Cmd) (stdin io.WriteCloser, stop func()) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("kernel refused the helper's namespaces: %v", err)
	}
	return stdin, func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}
