// Package security is stockade's regression suite for known container
// escapes and for faults (crashes, restarts): each test reproduces an attack
// or a failure against real containers and checks that stockade holds.
// SECURITY.md lists every case and what it shows.
package security

import (
	"os"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

var newID = harness.NewID

type buffer = harness.Buffer

// newContainer creates a busybox container; it is removed when the test ends.
func newContainer(t *testing.T, env *harness.Env, id string, args []string, opts ...oci.SpecOpts) client.Container {
	t.Helper()
	return env.NewContainer(t, id, args, opts...)
}

// run runs a container to its end and returns exit code and output.
func run(t *testing.T, env *harness.Env, args []string, opts ...oci.SpecOpts) (uint32, string) {
	t.Helper()
	return env.RunToExit(t, newContainer(t, env, newID("run"), args, opts...))
}

// startLong starts a sleeping container.
func startLong(t *testing.T, env *harness.Env, opts ...oci.SpecOpts) (client.Container, client.Task) {
	t.Helper()
	c := newContainer(t, env, newID("long"), []string{"sleep", "3600"}, opts...)
	return c, env.Start(t, c)
}

// execIn runs args in task and returns exit code and output; a start error
// is returned, not fatal, since some tests expect one.
func execIn(t *testing.T, env *harness.Env, task client.Task, mutate func(*specs.Process)) (uint32, string, error) {
	t.Helper()
	ctx := env.Context()
	spec, err := task.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps := *spec.Process
	mutate(&ps)
	var out buffer
	p, err := task.Exec(ctx, newID("x"), &ps, env.NewIO(nil, &out, &out))
	if err != nil {
		return 0, "", err
	}
	defer p.Delete(ctx, client.WithProcessKill)
	sc, _ := p.Wait(ctx)
	if err := p.Start(ctx); err != nil {
		return 0, "", err
	}
	select {
	case st := <-sc:
		return st.ExitCode(), out.String(), nil
	case <-time.After(60 * time.Second):
		t.Fatal("exec did not exit in 60s")
	}
	return 0, "", nil
}

// waitFile waits up to 10s for path to exist and be non-empty.
func waitFile(path string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			return true
		}
	}
	return false
}
