package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
)

// TestCVE2022_0492_ReleaseAgent: the escape creates a user and cgroup
// namespace, mounts cgroup v1 and writes release_agent. Every step needs a
// call the profile denies without CAP_SYS_ADMIN.
func TestCVE2022_0492_ReleaseAgent(t *testing.T) {
	env := harness.Get(t)
	script := `unshare -Urm sh -c 'mkdir -p /tmp/c && mount -t cgroup -o rdma cgroup /tmp/c && echo /pwn > /tmp/c/release_agent && echo ESCAPED'; echo rc=$?`
	code, out := run(t, env, []string{"sh", "-c", script})
	if code != 0 || strings.Contains(out, "ESCAPED") || strings.Contains(out, "rc=0") {
		t.Fatalf("release_agent escape not stopped: exit %d: %s", code, out)
	}
	if env.Handler == harness.HandlerStockade && !strings.Contains(out, "Operation not permitted") {
		t.Errorf("want the unshare refused with EPERM: %s", out)
	}
}

// TestCVE2022_0185_UserNSFsconfig: the exploit needs a user namespace and
// then fsopen/fsconfig on a filesystem; both are denied.
func TestCVE2022_0185_UserNSFsconfig(t *testing.T) {
	env := harness.Get(t)
	if env.Handler != harness.HandlerStockade {
		t.Skip("uses the probe against stockade's profile")
	}
	code, out := run(t, env, []string{"sh", "-c", "probe unshare-user; probe fsopen; probe clone-newuser; true"})
	for _, want := range []string{"unshare-user errno=EPERM", "fsopen errno=EPERM", "clone-newuser errno=EPERM"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q, got exit %d: %s", want, code, out)
		}
	}
}

// TestImageCannotChooseSinkOrPath: what an image controls (its environment,
// its files, its entrypoint) and what a pod controls (annotations) cannot
// point stockade at another sink or host path: records go where the node
// config says, and unknown stockade annotations are refused.
func TestImageCannotChooseSinkOrPath(t *testing.T) {
	env := harness.Get(t)
	if env.Handler != harness.HandlerStockade {
		t.Skip("stockade's sinks")
	}
	evil := filepath.Join(t.TempDir(), "evil")
	c := newContainer(t, env, newID("sink"), []string{"sh", "-c", "probe keyctl; true"},
		oci.WithEnv([]string{"STOCKADE_DENIALS_DIR=" + evil, "DENIALS_DIR=" + evil}))
	var out buffer
	task, err := c.NewTask(env.Context(), env.NewIO(nil, &out, &out))
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := task.Wait(env.Context())
	if err := task.Start(env.Context()); err != nil {
		t.Fatal(err)
	}
	<-sc
	_, _ = task.Delete(env.Context())
	if _, err := os.Stat(evil); err == nil {
		t.Errorf("a path chosen by the image's environment was created: %s", evil)
	}
	log := denials.LogPath(env.LogDir, denial.Attribution{Namespace: harness.Namespace, Pod: c.ID(), PodUID: c.ID(), Container: c.ID()})
	if !waitFile(log) {
		t.Errorf("the denial did not reach the configured sink %s", log)
	}
	for _, k := range []string{"stockade.dev/denials-dir", "stockade.dev/sink"} {
		c := newContainer(t, env, newID("ann"), []string{"true"}, oci.WithAnnotations(map[string]string{k: evil}))
		if _, err := c.NewTask(env.Context(), cio.NullIO); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), k) {
			t.Errorf("annotation %s: %v, want InvalidArgument naming it", k, err)
		}
	}
}
