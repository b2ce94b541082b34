package failpoint

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/task"
)

// groupAnnotation puts containers in one shim, as one pod's are.
const groupAnnotation = "io.containerd.runc.v2.group"

// TestFailureAtEveryStepIsUndone runs, for every failpoint step, a
// container's whole life in the same shim as a long-running sibling: the
// step fails once, the failed operation leaves nothing behind, the retried
// life completes with the right exit codes, nothing of the container is
// left on the host afterwards, and the sibling is still served.
func TestFailureAtEveryStepIsUndone(t *testing.T) {
	env := harness.Get(t)
	env.RequireStockade(t)
	group := harness.NewID("fp-pod")
	sibling := env.NewContainer(t, harness.NewID("fp-sibling"), []string{"sleep", "3600"},
		oci.WithAnnotations(map[string]string{groupAnnotation: group}))
	siblingTask := env.Start(t, sibling)
	shims, err := env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}

	for _, step := range task.FailpointSteps {
		t.Run(step, func(t *testing.T) {
			id := harness.NewID("fp-" + strings.ReplaceAll(step, ".", "-"))
			c := env.NewContainer(t, id, []string{"sleep", "3600"}, oci.WithAnnotations(map[string]string{
				groupAnnotation:          group,
				task.FailpointAnnotation: step,
			}))
			life(t, env, c, step)
			env.RemoveContainer(c)
			env.AssertNoLeaks(t, id)
			// The pod's shim still serves its other container.
			if code := execIn(t, env, siblingTask, "sibling-"+id, "exit 7"); code != 7 {
				t.Errorf("exec in the sibling after %s: exit %d, want 7", step, code)
			}
		})
	}
	after, err := env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}
	for pid := range shims {
		if _, ok := after[pid]; !ok {
			t.Errorf("shim %d is gone", pid)
		}
	}
}

// life drives c through create, start, an exec, kill and delete; the
// operation that hits the failpoint must fail once with the injected error
// and is then retried the way a client would.
func life(t *testing.T, env *harness.Env, c client.Container, step string) {
	t.Helper()
	ctx := env.Context()
	failed := 0
	injected := func(what string, err error) bool {
		t.Helper()
		if err == nil {
			return false
		}
		if !strings.Contains(err.Error(), "failpoint "+step) || failed > 0 {
			t.Fatalf("%s: %v (failpoint %s)", what, err, step)
		}
		failed++
		return true
	}

	var tk client.Task
	for {
		var err error
		tk, err = c.NewTask(ctx, cio.NullIO)
		if !injected("create", err) {
			break
		}
		// A Create that failed leaves nothing of the container.
		env.AssertNoLeaks(t, c.ID())
	}
	exitC, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for injected("start", tk.Start(ctx)) {
	}
	for i := 0; ; i++ {
		code, err := execOnce(ctx, t, tk, fmt.Sprintf("e%d", i), "exit 3")
		if injected("exec", err) {
			// The failed exec is gone, with its process if it had one
			// (killed, so gone once the kernel has reaped it): only the
			// init is left in the container.
			deadline := time.Now().Add(10 * time.Second)
			for {
				ps, err := tk.Pids(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(ps) == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after a failed exec the container has %d processes: %v", len(ps), ps)
				}
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		if code != 3 {
			t.Errorf("exec exit %d, want 3", code)
		}
		break
	}
	if err := tk.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := <-exitC; st.ExitCode() != 137 {
		t.Errorf("init exit %d, want 137", st.ExitCode())
	}
	for {
		_, err := tk.Delete(ctx)
		if !injected("delete", err) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if failed != 1 {
		t.Errorf("failpoint %s hit %d times, want once", step, failed)
	}
}

// execOnce runs sh -c script as exec id and returns its exit code; on error
// the exec is deleted again.
func execOnce(ctx context.Context, t *testing.T, tk client.Task, id, script string) (uint32, error) {
	t.Helper()
	spec := &specs.Process{Args: []string{"sh", "-c", script}, Cwd: "/", Env: []string{"PATH=/bin:/usr/bin"}}
	p, err := tk.Exec(ctx, id, spec, cio.NullIO)
	if err != nil {
		return 0, err
	}
	st, err := p.Wait(ctx)
	if err == nil {
		err = p.Start(ctx)
	}
	if err != nil {
		// A failed start leaves a process to delete (and kill, if it
		// ran); that delete must work.
		if _, derr := p.Delete(ctx, client.WithProcessKill); derr != nil {
			t.Errorf("delete exec %s after %v: %v", id, err, derr)
		}
		return 0, err
	}
	s := <-st
	if _, err := p.Delete(ctx); err != nil {
		// Deleting an exited exec is retried: the first failure must be
		// the injected one.
		if _, err2 := p.Delete(ctx); err2 != nil {
			return 0, fmt.Errorf("delete exec twice: %w; %w", err, err2)
		}
		return 0, err
	}
	return s.ExitCode(), s.Error()
}

func execIn(t *testing.T, env *harness.Env, tk client.Task, id, script string) uint32 {
	t.Helper()
	code, err := execOnce(env.Context(), t, tk, id, script)
	if err != nil {
		t.Fatalf("exec %s: %v", id, err)
	}
	return code
}
