package task

import (
	"context"
	"syscall"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
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
			retry("exec", func() error {
				_, err := api.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "c", ExecID: "e", Spec: execSpec(t)})
				return err
			})
			retry("exec start", func() error {
				_, err := api.Start(ctx, &taskAPI.StartRequest{ID: "c", ExecID: "e"})
				return err
			})
			if _, err := api.Kill(ctx, &taskAPI.KillRequest{ID: "c", Signal: uint32(syscall.SIGKILL)}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"e", ""} {
				if _, err := api.Wait(ctx, &taskAPI.WaitRequest{ID: "c", ExecID: id}); err != nil {
					t.Fatal(err)
				}
			}
			retry("delete exec", func() error {
				_, err := api.Delete(ctx, &taskAPI.DeleteRequest{ID: "c", ExecID: "e"})
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
