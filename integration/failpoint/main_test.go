// Package failpoint injects a failure at every step of Create, Start, Exec
// and Delete of a real container (shim/task's fault-injection decorator,
// enabled through the private containerd's environment, which the shims it
// starts inherit) and proves that each failure is undone on the host and
// that the shim goes on serving the other containers it holds.
package failpoint

import (
	"os"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/task"
)

func TestMain(m *testing.M) {
	// Before harness.Main starts containerd: its environment passes to the
	// shims. Only this package's containerd has it.
	os.Setenv(task.FailpointEnv, "1")
	os.Exit(harness.Main(m))
}
