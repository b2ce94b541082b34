package task

import (
	"context"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

// A container whose Create is still running must look absent to every other
// request, not crash the shim that serves the whole pod.
func TestRequestsDuringCreateSeeNotFound(t *testing.T) {
	s := &service{containers: map[string]*entry{"creating": nil}}
	ctx := context.Background()
	if _, err := s.Stats(ctx, &taskAPI.StatsRequest{ID: "creating"}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("stats: %v", err)
	}
	if _, err := s.State(ctx, &taskAPI.StateRequest{ID: "creating"}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("state: %v", err)
	}
	if _, err := s.Kill(ctx, &taskAPI.KillRequest{ID: "creating", Signal: 9}); !errdefs.IsNotFound(errgrpc.ToNative(err)) {
		t.Errorf("kill: %v", err)
	}
	if s.sandboxPid("creating") != 0 {
		t.Error("sandbox pid of a container being created")
	}
	if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "creating"}); !errdefs.IsAlreadyExists(errgrpc.ToNative(err)) {
		t.Errorf("create while creating: %v", err)
	}
}
