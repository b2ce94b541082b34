package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// Buffer is an io.Writer that a task's stdio copy goroutines may write while
// a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var idSeq atomic.Int64

// NewID returns a container ID unique to this test process: containers of
// concurrent tests and of earlier runs never collide.
func NewID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), idSeq.Add(1))
}

// RequireStockade skips t unless stockade is the runtime under test: for
// promises stockade makes beyond containerd's contract, which runc's shim
// does not make.
func (e *Env) RequireStockade(t testing.TB) {
	t.Helper()
	if e.Handler != HandlerStockade {
		t.Skipf("tests stockade's own promises; runtime under test is %s", e.Runtime)
	}
}

// NewContainer creates a busybox container running args with the runtime
// under test; it and its task are removed when the test ends.
func (e *Env) NewContainer(t testing.TB, id string, args []string, opts ...oci.SpecOpts) client.Container {
	t.Helper()
	ctx := e.Context()
	img, err := e.Client.GetImage(ctx, BusyboxImage)
	if err != nil {
		t.Fatalf("get image: %v", err)
	}
	c, err := e.Client.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id+"-snap", img),
		e.NewContainerOpts(),
		client.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}, opts...)...),
	)
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	t.Cleanup(func() { e.RemoveContainer(c) })
	return c
}

// RemoveContainer removes a container and its task whatever their state.
func (e *Env) RemoveContainer(c client.Container) {
	ctx, cancel := context.WithTimeout(e.Context(), 30*time.Second)
	defer cancel()
	if task, err := c.Task(ctx, nil); err == nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
	}
	_ = c.Delete(ctx, client.WithSnapshotCleanup)
}

// RunToExit runs c's task to its end and returns its exit code and its
// stdout and stderr together; the task is deleted.
func (e *Env) RunToExit(t testing.TB, c client.Container) (uint32, string) {
	t.Helper()
	ctx := e.Context()
	var out Buffer
	task, err := c.NewTask(ctx, e.NewIO(nil, &out, &out))
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	var st client.ExitStatus
	select {
	case st = <-statusC:
	case <-time.After(120 * time.Second):
		t.Fatal("task did not exit within 120s")
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	return st.ExitCode(), out.String()
}

// Start starts c's task with no stdio and returns it.
func (e *Env) Start(t testing.TB, c client.Container) client.Task {
	t.Helper()
	task, err := c.NewTask(e.Context(), cio.NullIO)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	if err := task.Start(e.Context()); err != nil {
		t.Fatalf("start: %v", err)
	}
	return task
}
