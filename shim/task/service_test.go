package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/stockade-dev/stockade/shim/container"
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

// kinds names events compactly: "create c", "start c", "exec-added c/e",
// "exit c/e" and so on, for order assertions.
func kinds(evs []any) []string {
	var out []string
	for _, e := range evs {
		switch e := e.(type) {
		case *eventstypes.TaskCreate:
			out = append(out, "create "+e.ContainerID)
		case *eventstypes.TaskStart:
			out = append(out, "start "+e.ContainerID)
		case *eventstypes.TaskExit:
			if e.ID == e.ContainerID {
				out = append(out, fmt.Sprintf("exit %s %d", e.ContainerID, e.ExitStatus))
			} else {
				out = append(out, fmt.Sprintf("exit %s/%s %d", e.ContainerID, e.ID, e.ExitStatus))
			}
		case *eventstypes.TaskExecAdded:
			out = append(out, "exec-added "+e.ContainerID+"/"+e.ExecID)
		case *eventstypes.TaskExecStarted:
			out = append(out, "exec-started "+e.ContainerID+"/"+e.ExecID)
		case *eventstypes.TaskDelete:
			out = append(out, "delete "+e.ContainerID)
		case *eventstypes.TaskOOM:
			out = append(out, "oom "+e.ContainerID)
		case *eventstypes.TaskPaused:
			out = append(out, "paused "+e.ContainerID)
		case *eventstypes.TaskResumed:
			out = append(out, "resumed "+e.ContainerID)
		default:
			out = append(out, fmt.Sprintf("%T", e))
		}
	}
	return out
}

func execSpec(t *testing.T) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(&specs.Process{Args: []string{"true"}, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (h *harness) create(id string) {
	h.t.Helper()
	if _, err := h.s.Create(context.Background(), &taskAPI.CreateTaskRequest{ID: id, Bundle: h.bundle()}); err != nil {
		h.t.Fatalf("create %s: %v", id, err)
	}
}

func (h *harness) start(id, execID string) {
	h.t.Helper()
	if _, err := h.s.Start(context.Background(), &taskAPI.StartRequest{ID: id, ExecID: execID}); err != nil {
		h.t.Fatalf("start %s/%s: %v", id, execID, err)
	}
}

func (h *harness) exec(id, execID string) {
	h.t.Helper()
	if _, err := h.s.Exec(context.Background(), &taskAPI.ExecProcessRequest{ID: id, ExecID: execID, Spec: execSpec(h.t)}); err != nil {
		h.t.Fatalf("exec %s/%s: %v", id, execID, err)
	}
}

func code(err error) codes.Code { return status.Code(err) }

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func TestEventOrderCreateStartExit(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	if _, err := h.s.Kill(context.Background(), &taskAPI.KillRequest{ID: "c", Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	equal(t, "events", kinds(h.waitEvents(3)), []string{"create c", "start c", "exit c 137"})
	if _, err := h.s.Wait(context.Background(), &taskAPI.WaitRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
}

// A process that exits the moment it starts must still be seen to start
// first: containerd drops an exit for a task it has not seen start.
func TestStartPublishedBeforeInstantExit(t *testing.T) {
	h := newHarness(t)
	h.b.exitAtRun["c"] = 3
	h.b.exitAtRun["e"] = 4
	h.create("c")
	h.start("c", "")
	equal(t, "init events", kinds(h.waitEvents(3)), []string{"create c", "start c", "exit c 3"})

	h.b.exitAtRun = map[string]int{"e": 4}
	h.create("d")
	h.start("d", "")
	h.exec("d", "e")
	h.start("d", "e")
	equal(t, "exec events", kinds(h.waitEvents(5)), []string{"create d", "start d", "exec-added d/e", "exec-started d/e", "exit d/e 4"})
}

// containerd expects every exec's exit before its container's own.
func TestExecExitsBeforeContainerExit(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	for _, e := range []string{"e1", "e2"} {
		h.exec("c", e)
		h.start("c", e)
	}
	h.waitEvents(6)
	if _, err := h.s.Kill(context.Background(), &taskAPI.KillRequest{ID: "c", Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	evs := kinds(h.waitEvents(3))
	if evs[2] != "exit c 137" {
		t.Errorf("the container's exit is not last: %q", evs)
	}
	// The pids of the remaining processes name their exec.
	pr, err := h.s.Pids(context.Background(), &taskAPI.PidsRequest{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pr.Processes) != 1 {
		t.Errorf("pids after every process exited (fake lists the init): %v", pr.Processes)
	}
}

// The backend hears of every Create and Exec before any of its work, so it
// can start slow kernel work the creation needs (container.WarmCgroupAttach).
func TestCreateAndExecPrepareTheBackend(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	h.exec("c", "e1")
	h.b.mu.Lock()
	defer h.b.mu.Unlock()
	if !slices.Equal(h.b.prepares, []bool{false, true}) {
		t.Fatalf("Prepare calls (exec?) after one Create and one Exec = %v, want [false true]", h.b.prepares)
	}
}

func TestPidsNameTheirExec(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	h.exec("c", "e")
	h.start("c", "e")
	pr, err := h.s.Pids(context.Background(), &taskAPI.PidsRequest{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	var named int
	for _, p := range pr.Processes {
		if p.Info == nil {
			continue
		}
		v, err := typeurl.UnmarshalAny(p.Info)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := v.(*options.ProcessDetails); ok && d.ExecID == "e" {
			named++
		}
	}
	if len(pr.Processes) != 2 || named != 1 {
		t.Errorf("pids %v: %d named e", pr.Processes, named)
	}
}

// While a Create runs, its ID is taken (a second Create fails at once) but
// the container is not there for anything else, and the shim will not shut
// down under it.
func TestCreateReservesIDWhileRunning(t *testing.T) {
	h := newHarness(t)
	h.b.block, h.b.entered = make(chan struct{}), make(chan struct{})
	bundle := h.bundle()
	errc := make(chan error, 1)
	go func() {
		_, err := h.s.Create(context.Background(), &taskAPI.CreateTaskRequest{ID: "c", Bundle: bundle})
		errc <- err
	}()
	<-h.b.entered
	ctx := context.Background()
	if _, err := h.s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: bundle}); code(err) != codes.AlreadyExists {
		t.Errorf("second create: %v", err)
	}
	if _, err := h.s.State(ctx, &taskAPI.StateRequest{ID: "c"}); code(err) != codes.NotFound {
		t.Errorf("state during create: %v", err)
	}
	if _, err := h.s.Start(ctx, &taskAPI.StartRequest{ID: "c"}); code(err) != codes.NotFound {
		t.Errorf("start during create: %v", err)
	}
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"}); code(err) != codes.NotFound {
		t.Errorf("delete during create: %v", err)
	}
	if _, err := h.s.Shutdown(ctx, &taskAPI.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.sd.Done():
		t.Fatal("shim shut down while a create was in flight")
	default:
	}
	close(h.b.block)
	if err := <-errc; err != nil {
		t.Fatalf("first create: %v", err)
	}
	if _, err := h.s.State(ctx, &taskAPI.StateRequest{ID: "c"}); err != nil {
		t.Errorf("state after create: %v", err)
	}
}

// Every way Create can fail leaves nothing behind: no entry, the pipeline
// undone as often as it was applied, no event; the same ID can be created
// afterwards.
func TestCreateRollsBackAtEveryFailurePoint(t *testing.T) {
	for _, tc := range []struct {
		point string
		want  codes.Code
	}{
		{"spec", codes.NotFound},
		{"intercept", codes.InvalidArgument},
		{"remap", codes.FailedPrecondition},
		{"backend", codes.Unavailable},
		{"exit-during-create", codes.Unknown},
	} {
		t.Run(tc.point, func(t *testing.T) {
			h := newHarness(t)
			bundle := h.bundle()
			var exited sync.WaitGroup
			switch tc.point {
			case "spec":
				if err := os.Remove(filepath.Join(bundle, "config.json")); err != nil {
					t.Fatal(err)
				}
			case "intercept", "remap":
				h.rt.failAt = tc.point
			case "backend":
				h.b.fail = fmt.Errorf("libcontainer: injected: %w", errdefs.ErrUnavailable)
			case "exit-during-create":
				// The init was forked and died while its stdio was set
				// up: its exit reaches the service during the failed
				// Create and must not become an event.
				h.b.fail = fmt.Errorf("stdio: injected")
				b := h.b
				orig := b.fail
				h.s.backend = backendFunc(func(ctx context.Context, cfg container.Config, on Notify) (Container, error) {
					b.fail = nil
					c, _ := b.Create(ctx, cfg, on)
					fc := c.(*fakeContainer)
					exited.Add(1)
					go func() { defer exited.Done(); fc.exit(fc.init, 137) }()
					<-fc.init.done
					return nil, orig
				})
			}
			_, err := h.s.Create(context.Background(), &taskAPI.CreateTaskRequest{ID: "c", Bundle: bundle})
			if code(err) != tc.want {
				t.Fatalf("create: %v, want code %v", err, tc.want)
			}
			exited.Wait()
			intercepted, undone := h.rt.counts()
			if intercepted != undone {
				t.Errorf("pipeline applied %d times, undone %d times", intercepted, undone)
			}
			if n := len(h.s.containers); n != 0 {
				t.Errorf("%d containers registered after a failed create", n)
			}
			if evs := h.events(); len(evs) != 0 {
				t.Errorf("events after a failed create: %q", kinds(evs))
			}
			h.rt.failAt, h.b.fail, h.s.backend = "", nil, h.b
			h.create("c")
		})
	}
}

type backendFunc func(context.Context, container.Config, Notify) (Container, error)

func (f backendFunc) Create(ctx context.Context, cfg container.Config, on Notify) (Container, error) {
	return f(ctx, cfg, on)
}

func (backendFunc) Prepare(context.Context, bool) {}

// A created container that is deleted without ever starting (containerd
// does this when a start fails) gives back everything.
func TestDeleteBeforeStart(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	ctx := context.Background()
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, undone := h.rt.counts(); undone != 1 {
		t.Errorf("pipeline undone %d times", undone)
	}
	if _, err := h.s.State(ctx, &taskAPI.StateRequest{ID: "c"}); code(err) != codes.NotFound {
		t.Errorf("state after delete: %v", err)
	}
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"}); code(err) != codes.NotFound {
		t.Errorf("second delete: %v", err)
	}
	var deleted bool
	for _, k := range kinds(h.events()) {
		deleted = deleted || k == "delete c"
	}
	if !deleted {
		t.Error("no delete event")
	}
}

// A running container cannot be deleted; nothing is released.
func TestDeleteRunningRefused(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	h.exec("c", "e")
	h.start("c", "e")
	ctx := context.Background()
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"}); code(err) != codes.FailedPrecondition {
		t.Errorf("delete running: %v", err)
	}
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c", ExecID: "e"}); code(err) != codes.FailedPrecondition {
		t.Errorf("delete running exec: %v", err)
	}
	if _, undone := h.rt.counts(); undone != 0 {
		t.Errorf("pipeline undone %d times for a running container", undone)
	}
	if _, err := h.s.Kill(ctx, &taskAPI.KillRequest{ID: "c", Signal: uint32(syscall.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Wait(ctx, &taskAPI.WaitRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Wait(ctx, &taskAPI.WaitRequest{ID: "c", ExecID: "e"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c", ExecID: "e"}); err != nil {
		t.Errorf("delete exited exec: %v", err)
	}
	r, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ExitStatus != 137 {
		t.Errorf("delete reports exit status %d", r.ExitStatus)
	}
}

func TestOOMEvent(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	fc := h.b.container("c")
	fc.on.OOM(fc)
	equal(t, "events", kinds(h.waitEvents(3)), []string{"create c", "start c", "oom c"})
}

func TestShutdownWaitsForTheLastContainer(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	ctx := context.Background()
	if _, err := h.s.Shutdown(ctx, &taskAPI.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.sd.Done():
		t.Fatal("shut down with a container left")
	default:
	}
	if _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Shutdown(ctx, &taskAPI.ShutdownRequest{}); err != nil {
		t.Fatal(err)
	}
	<-h.sd.Done()
}

// Exec into a paused container is refused like runc refuses it, and
// resumes work after Resume.
func TestExecIntoPausedRefused(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	h.start("c", "")
	ctx := context.Background()
	if _, err := h.s.Pause(ctx, &taskAPI.PauseRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	st, err := h.s.State(ctx, &taskAPI.StateRequest{ID: "c"})
	if err != nil || st.Status != apitask.Status_PAUSED {
		t.Fatalf("state of paused: %v %v", st, err)
	}
	h.exec("c", "e")
	if _, err := h.s.Start(ctx, &taskAPI.StartRequest{ID: "c", ExecID: "e"}); code(err) != codes.FailedPrecondition {
		t.Errorf("start exec in paused container: %v", err)
	}
	if _, err := h.s.Resume(ctx, &taskAPI.ResumeRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	h.start("c", "e")
	equal(t, "events", kinds(h.events()), []string{"create c", "start c", "paused c", "exec-added c/e", "resumed c", "exec-started c/e"})
}

// Errors leave the service as gRPC statuses carrying their errdefs kind,
// converted once (no status wrapped in another status's message).
func TestErrorCodes(t *testing.T) {
	h := newHarness(t)
	h.create("c")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"create existing", second(h.s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c", Bundle: h.bundle()})), codes.AlreadyExists},
		{"state unknown", second(h.s.State(ctx, &taskAPI.StateRequest{ID: "x"})), codes.NotFound},
		{"state unknown exec", second(h.s.State(ctx, &taskAPI.StateRequest{ID: "c", ExecID: "x"})), codes.NotFound},
		{"exec without spec", second(h.s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "c", ExecID: "e"})), codes.InvalidArgument},
		{"update without resources", second(h.s.Update(ctx, &taskAPI.UpdateTaskRequest{ID: "c"})), codes.InvalidArgument},
		{"checkpoint", second(h.s.Checkpoint(ctx, &taskAPI.CheckpointTaskRequest{ID: "c"})), codes.Unimplemented},
		{"resize without terminal", second(h.s.ResizePty(ctx, &taskAPI.ResizePtyRequest{ID: "c"})), codes.FailedPrecondition},
		{"resume not paused", second(h.s.Resume(ctx, &taskAPI.ResumeRequest{ID: "c"})), codes.FailedPrecondition},
		{"kill unknown", second(h.s.Kill(ctx, &taskAPI.KillRequest{ID: "x", Signal: 9})), codes.NotFound},
	} {
		if code(tc.err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
		if st, ok := status.FromError(tc.err); ok && strings.Contains(st.Message(), "rpc error") {
			t.Errorf("%s: converted twice: %v", tc.name, tc.err)
		}
	}
	h.start("c", "")
	if _, err := h.s.Kill(ctx, &taskAPI.KillRequest{ID: "c", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Wait(ctx, &taskAPI.WaitRequest{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Kill(ctx, &taskAPI.KillRequest{ID: "c", Signal: 9}); code(err) != codes.NotFound {
		t.Errorf("kill exited: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }
