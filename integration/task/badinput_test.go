package task

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

// expectCreateError creates a task that must fail with the given kind and
// a message naming what was wrong, and leave nothing behind.
func expectCreateError(t *testing.T, env *harness.Env, id string, c client.Container, is func(error) bool, mentions string, opts ...client.NewTaskOpts) {
	t.Helper()
	_, err := c.NewTask(env.Context(), cio.NullIO, opts...)
	if err == nil {
		t.Fatal("create succeeded, want an error")
	}
	if !is(err) {
		t.Errorf("error kind wrong: %v", err)
	}
	if !strings.Contains(err.Error(), mentions) {
		t.Errorf("error %q does not mention %q", err, mentions)
	}
	env.AssertNoLeaks(t, id)
}

func TestBadInputSpecWithoutProcess(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	id := newID(t)
	c := newContainer(t, env, id, []string{"true"}, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process = nil
		return nil
	})
	expectCreateError(t, env, id, c, errdefs.IsInvalidArgument, "process")
}

func TestBadInputUnsupportedRootfsMount(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	id := newID(t)
	c := newContainer(t, env, id, []string{"true"})
	expectCreateError(t, env, id, c, errdefs.IsInvalidArgument, "stockadefs",
		client.WithRootFS([]mount.Mount{{Type: "stockadefs", Source: "none"}}))
}

func TestBadInputMissingBinary(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	id := newID(t)
	c := newContainer(t, env, id, []string{"/no/such/binary"})
	expectCreateError(t, env, id, c, errdefs.IsNotFound, "/no/such/binary")
}

func TestBadInputUnknownRlimit(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	id := newID(t)
	c := newContainer(t, env, id, []string{"true"}, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_BOGUS"})
		return nil
	})
	expectCreateError(t, env, id, c, errdefs.IsInvalidArgument, "RLIMIT_BOGUS")
}

func TestBadInputExecIDReused(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	_, task := startLong(t, env)
	spec, _ := task.Spec(ctx)
	pspec := *spec.Process
	pspec.Args = []string{"sleep", "10"}
	if _, err := task.Exec(ctx, "dup", &pspec, cio.NullIO); err != nil {
		t.Fatal(err)
	}
	_, err := task.Exec(ctx, "dup", &pspec, cio.NullIO)
	if !errdefs.IsAlreadyExists(err) {
		t.Errorf("second exec with the same id: %v, want AlreadyExists", err)
	}
}

func TestBadInputKillAndExecAfterDelete(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	c := newContainer(t, env, newID(t), []string{"true"})
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := task.Wait(ctx)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-sc
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); !errdefs.IsNotFound(err) {
		t.Errorf("kill after delete: %v, want NotFound", err)
	}
	spec, _ := c.Spec(ctx)
	if _, err := task.Exec(ctx, "late", spec.Process, cio.NullIO); !errdefs.IsNotFound(err) {
		t.Errorf("exec after delete: %v, want NotFound", err)
	}
}

// shimClient connects straight to the shim serving a task, the way containerd
// does, to test what containerd itself would catch before the shim.
func shimClient(t *testing.T, env *harness.Env, id string) (taskAPI.TTRPCTaskService, string) {
	t.Helper()
	bundle := filepath.Join(env.Dir, "state", "io.containerd.runtime.v2.task", harness.Namespace, id)
	// containerd 2.x records the shim's address in bootstrap.json (older
	// versions wrote a plain "address" file).
	var boot struct {
		Address string `json:"address"`
	}
	if data, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil {
		_ = json.Unmarshal(data, &boot)
	}
	if boot.Address == "" {
		data, err := os.ReadFile(filepath.Join(bundle, "address"))
		if err != nil {
			t.Fatalf("shim address: no bootstrap.json or address in %s: %v", bundle, err)
		}
		boot.Address = strings.TrimSpace(string(data))
	}
	path := strings.TrimPrefix(boot.Address, "unix://")
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		t.Fatalf("dial shim: %v", err)
	}
	tc := ttrpc.NewClient(conn)
	t.Cleanup(func() { tc.Close() })
	return taskAPI.NewTTRPCTaskClient(tc), path
}

func TestShimSocketIsPrivateFile(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	c, _ := startLong(t, env)
	_, path := shimClient(t, env, c.ID())
	if strings.HasPrefix(path, "@") || strings.HasPrefix(path, "\x00") {
		t.Fatalf("shim socket %q is abstract", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("shim socket mode = %v, want a 0600 socket", fi.Mode())
	}
}

func TestShimRejectsDuplicateContainerID(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	c, task := startLong(t, env)
	svc, _ := shimClient(t, env, c.ID())
	bundle := filepath.Join(env.Dir, "state", "io.containerd.runtime.v2.task", harness.Namespace, c.ID())
	_, err := svc.Create(env.Context(), &taskAPI.CreateTaskRequest{ID: c.ID(), Bundle: bundle})
	if !errdefs.IsAlreadyExists(errgrpc.ToNative(err)) {
		t.Errorf("duplicate create: %v, want AlreadyExists", err)
	}
	// The first container is untouched.
	if st, err := task.Status(env.Context()); err != nil || st.Status != client.Running {
		t.Errorf("original task after duplicate create: %v %v", st, err)
	}
	_, err = svc.Checkpoint(env.Context(), &taskAPI.CheckpointTaskRequest{ID: c.ID()})
	if !errdefs.IsNotImplemented(errgrpc.ToNative(err)) {
		t.Errorf("checkpoint: %v, want NotImplemented", err)
	}
}
