package task

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	apitask "github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc/codes"
)

// Fault injection is off unless the environment turns it on.
func TestFailpointsOffByDefault(t *testing.T) {
	t.Setenv(FailpointEnv, "")
	h := newHarness(t)
	if _, ok := withFailpoints(context.Background(), h.s).(*service); !ok || h.s.step != nil {
		t.Fatal("fault injection enabled without " + FailpointEnv)
	}
}

// Every step a failpoint names is reached by a container's life, fails
// once with the injected error, and the lifecycle then completes on retry
// and gives back everything, as containerd would drive it.
func TestEveryFailpointFailsOnceAndIsUndone(t *testing.T) {
	t.Setenv(FailpointEnv, "1")
	for _, step := range FailpointSteps {
		t.Run(step, func(t *testing.T) {
			h := newHarness(t)
			api := withFailpoints(context.Background(), h.s)
			ctx := context.Background()
			bundle := h.bundleWith(map[string]string{FailpointAnnotation: step})
			var failed int
			// retry runs op until it succeeds; a failure must be the
			// injected one, and only one may happen.
			retry := func(what string, op func() error) {
				t.Helper()
				for i := 0; ; i++ {
					err := op()
					if err == nil {
						return
					}
					if code(err) != codes.Unavailable || i > 0 {
						t.Fatalf("%s: %v", what, err)
					}
					failed++
					if n := len(h.s.containers); what == "create" && n != 0 {
						t.Fatalf("failed create left %d containers registered", n)
					}
				}
			}
			retry("create", func() error {
				_, err := api.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: bundle})
				return err
			})
			retry("start", func() error { _, err := api.Start(ctx, &taskAPI.StartRequest{ID: "c"}); return err })
			// A failed exec is deleted (if it got that far) and a new
			// one made, as containerd does: an exec that ran before its
			// start failed cannot be started again.
			execID, n := "", 0
			retry("exec", func() error {
				n++
				id := fmt.Sprintf("e%d", n)
				_, err := api.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "c", ExecID: id, Spec: execSpec(t)})
				if err == nil {
					_, err = api.Start(ctx, &taskAPI.StartRequest{ID: "c", ExecID: id})
					if err != nil {
						if _, derr := api.Delete(ctx, &taskAPI.DeleteRequest{ID: "c", ExecID: id}); derr != nil {
							t.Errorf("delete exec %s after a failed start: %v", id, derr)
						}
					}
				}
				execID = id
				return err
			})
			if _, err := api.Kill(ctx, &taskAPI.KillRequest{ID: "c", Signal: uint32(syscall.SIGKILL)}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{execID, ""} {
				if _, err := api.Wait(ctx, &taskAPI.WaitRequest{ID: "c", ExecID: id}); err != nil {
					t.Fatal(err)
				}
			}
			retry("delete exec", func() error {
				_, err := api.Delete(ctx, &taskAPI.DeleteRequest{ID: "c", ExecID: execID})
				return err
			})
			retry("delete", func() error { _, err := api.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"}); return err })
			if failed != 1 {
				t.Errorf("step %s failed %d times, want once", step, failed)
			}
			if intercepted, undone := h.rt.counts(); intercepted != undone {
				t.Errorf("pipeline applied %d times, undone %d", intercepted, undone)
			}
			if n := len(h.s.containers); n != 0 {
				t.Errorf("%d containers left", n)
			}
		})
	}
}

// An exec whose start fails after its process ran is stopped when Start
// returns: the caller deletes it next, and containerd's client does not
// kill a process whose start returned no pid.
func TestFailedExecStartReturnsOnceTheProcessIsGone(t *testing.T) {
	t.Setenv(FailpointEnv, "1")
	h := newHarness(t)
	api := withFailpoints(context.Background(), h.s)
	ctx := context.Background()
	bundle := h.bundleWith(map[string]string{FailpointAnnotation: "exec.process"})
	if _, err := api.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: bundle}); err != nil {
		t.Fatal(err)
	}
	h.start("c", "")
	h.exec("c", "e")
	if _, err := api.Start(ctx, &taskAPI.StartRequest{ID: "c", ExecID: "e"}); code(err) != codes.Unavailable {
		t.Fatalf("start: %v", err)
	}
	st, err := api.State(ctx, &taskAPI.StateRequest{ID: "c", ExecID: "e"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != apitask.Status_STOPPED {
		t.Errorf("exec is %v when its failed start returns", st.Status)
	}
	if _, err := api.Delete(ctx, &taskAPI.DeleteRequest{ID: "c", ExecID: "e"}); err != nil {
		t.Errorf("delete the failed exec: %v", err)
	}
}
