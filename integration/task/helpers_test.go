package task

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// assertNoLeaks checks that nothing of container id is left on the host:
// no mount, no cgroup, no runtime state directory, no process.
func assertNoLeaks(t testing.TB, env *harness.Env, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaks := findLeaks(env, id)
		if len(leaks) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s left behind: %s", id, strings.Join(leaks, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func findLeaks(env *harness.Env, id string) []string {
	var leaks []string
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(mi))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 4 && strings.Contains(f[4], "/"+id+"/") {
				leaks = append(leaks, "mount "+f[4])
			}
		}
	}
	cg, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", harness.Namespace, id))
	if u, err := os.Stat(filepath.Join("/sys/fs/cgroup/unified", harness.Namespace, id)); err == nil && u.IsDir() {
		cg = append(cg, "unified")
	}
	for _, d := range cg {
		leaks = append(leaks, "cgroup "+d)
	}
	state := filepath.Join("/run/stockade", harness.Namespace, id)
	if env.Handler == harness.HandlerRunc {
		state = filepath.Join(env.RuncRoot(), harness.Namespace, id)
	}
	if _, err := os.Stat(state); err == nil {
		leaks = append(leaks, "state "+state)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("/"+harness.Namespace+"/"+id+"\n")) {
			leaks = append(leaks, "process "+filepath.Base(filepath.Dir(p)))
		}
	}
	return leaks
}

// stockadeOnly skips tests of promises stockade makes beyond containerd's
// contract (error kinds, its own socket), which runc's shim does not make.
func stockadeOnly(t testing.TB, env *harness.Env) { t.Helper(); env.RequireStockade(t) }
