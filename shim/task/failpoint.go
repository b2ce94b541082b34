package task

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"

	"github.com/stockade-dev/stockade/shim/container"
)

// Fault injection for tests, in the manner of containerd's failpoint shim: a
// decorator around the real task service that makes chosen steps of Create,
// Start, Exec and Delete fail, so that tests can prove each failure is undone.
//
// It is off unless the shim's environment has FailpointEnv=1, which no node
// sets: containerd passes its own environment to shims, so a test's private
// containerd enables it for the shims it starts. A container then names the
// steps to fail in FailpointAnnotation (comma-separated); each fails once,
// the first time that container reaches it.
const (
	FailpointEnv        = "STOCKADE_TEST_FAILPOINTS"
	FailpointAnnotation = "failpoint.stockade.dev/steps"
)

// FailpointSteps are the steps a failpoint can name, in the order a
// container meets them.
var FailpointSteps = []string{
	// Create, in the service and in shim/container.
	"create.spec", "create.intercept", "create.remap",
	"create.rootfs", "create.libcontainer", "create.stdio", "create.init",
	"create.registered",
	// Start of the init.
	"start",
	// An exec: registration, then its start in the service and in
	// shim/container.
	"exec", "exec.start", "exec.stdio", "exec.process", "exec.delete",
	// Delete of the container.
	"delete",
}

// failpoints is the decorator.
type failpoints struct {
	taskAPI.TTRPCTaskService

	mu sync.Mutex
	// armed holds, per container, the steps still to fail. A container's
	// steps are armed at its first Create only: containerd retries a failed
	// Create with the same spec, and a retry must be able to succeed.
	armed map[string]map[string]bool
}

// withFailpoints wraps s when the environment asks for it.
func withFailpoints(ctx context.Context, s *service) taskAPI.TTRPCTaskService {
	if os.Getenv(FailpointEnv) != "1" {
		return s
	}
	log.G(ctx).Warn("fault injection enabled (" + FailpointEnv + "=1): for tests only")
	f := &failpoints{TTRPCTaskService: s, armed: map[string]map[string]bool{}}
	s.step = f.at
	return f
}

// RegisterTTRPC registers the decorator, not the service it wraps.
func (f *failpoints) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, f)
	return nil
}

// Create arms the container's failpoints, then creates it.
func (f *failpoints) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	f.mu.Lock()
	if _, seen := f.armed[r.ID]; !seen {
		steps := map[string]bool{}
		if ann, err := container.ReadAnnotations(r.Bundle); err == nil {
			for _, s := range strings.Split(ann[FailpointAnnotation], ",") {
				if s = strings.TrimSpace(s); s != "" {
					steps[s] = true
				}
			}
		}
		f.armed[r.ID] = steps
	}
	f.mu.Unlock()
	return f.TTRPCTaskService.Create(ctx, r)
}

// at fails step for container id if it is armed, once.
func (f *failpoints) at(ctx context.Context, id, step string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.armed[id][step] {
		return nil
	}
	delete(f.armed[id], step)
	log.G(ctx).WithFields(log.Fields{"container_id": id, "step": step}).Warn("failpoint: injecting a failure")
	return fmt.Errorf("failpoint %s: injected failure: %w", step, errdefs.ErrUnavailable)
}

// at runs the failpoint of step, if any (nil when fault injection is off).
func (s *service) at(ctx context.Context, id, step string) error {
	if s.step == nil {
		return nil
	}
	return s.step(ctx, id, step)
}
