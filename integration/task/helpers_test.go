package task

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/integration/harness"
)

type safeBuffer = harness.Buffer

// newID returns a container ID unique to this test run, named after the test.
func newID(t testing.TB) string {
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	return harness.NewID(name)
}

// newContainer creates a busybox container running args with the runtime under test.
func newContainer(t testing.TB, env *harness.Env, id string, args []string, opts ...oci.SpecOpts) client.Container {
	t.Helper()
	return env.NewContainer(t, id, args, opts...)
}

// cleanupContainer removes a container and its task whatever state they are in.
func cleanupContainer(env *harness.Env, c client.Container) { env.RemoveContainer(c) }

// run starts a task, waits for it and returns its exit code and output.
func run(t testing.TB, env *harness.Env, c client.Container) (uint32, string) {
	t.Helper()
	return env.RunToExit(t, c)
}

// startLong starts a long-running task (sleep) and returns it.
func startLong(t testing.TB, env *harness.Env, opts ...oci.SpecOpts) (client.Container, client.Task) {
	t.Helper()
	c := newContainer(t, env, newID(t), []string{"sleep", "3600"}, opts...)
	return c, env.Start(t, c)
}

// stockadeOnly skips tests of promises stockade makes beyond containerd's
// contract (error kinds, its own socket), which runc's shim does not make.
func stockadeOnly(t testing.TB, env *harness.Env) { t.Helper(); env.RequireStockade(t) }
