// Package task is stockade's containerd Task API v3 service: the ttrpc edge
// of the shim. It turns requests into calls on shim/container, runs the hooks
// pipeline at Create, publishes task events, and converts errors to gRPC
// status exactly once, on the way out.
package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	apitask "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/shim/container"
)

var (
	_     taskAPI.TTRPCTaskService = (*service)(nil)
	_     shim.TTRPCService        = (*service)(nil)
	empty                          = &ptypes.Empty{}
)

func init() {
	// containerd's client registers these when it marshals exec and update
	// requests; the shim must know the same URLs to decode them.
	for name, v := range map[string]any{"Process": &specs.Process{}, "LinuxResources": &specs.LinuxResources{}} {
		if _, err := typeurl.TypeURL(v); err != nil {
			typeurl.Register(v, "types.containerd.io", "opencontainers/runtime-spec", "1", name)
		}
	}
}

// entry is one container this shim serves.
type entry struct {
	c    Container
	pod  cri.Pod
	undo hooks.Undo
	res  hooks.Result
	// rec is the container's recording in record mode, else nil.
	rec *recording
}

// service implements the Task API for every container of one pod.
type service struct {
	ctx      context.Context
	ns       string
	shutdown shutdown.Service
	events   chan any
	runtime  interceptor
	backend  Backend

	mu         sync.Mutex
	containers map[string]*entry

	// step is the fault-injection hook (failpoint.go); nil on a node.
	step func(ctx context.Context, id, step string) error

	// lifecycleMu orders events: a process's start event is published
	// before its exit event, even when it exits at once.
	lifecycleMu sync.Mutex

	// trim hands free heap back to the kernel once requests stop.
	trim *trimmer
}

// NewService creates the task service.
func NewService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service, containerdAddress string) (taskAPI.TTRPCTaskService, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	s := newService(ctx, ns, sd, NewRuntime(ns, containerdAddress), libcontainerBackend{})
	// containerd's idmapped-overlay support clones lowerdirs under a
	// temporary directory; keep those under stockade's own state root.
	if err := mount.SetTempMountLocation(filepath.Join(StateRootBase, "tmpmounts")); err != nil {
		return nil, fmt.Errorf("temp mount location: %w", err)
	}
	go s.forward(ctx, publisher)
	sd.RegisterCallback(func(ctx context.Context) error {
		s.runtime.Close(ctx)
		return nil
	})
	if address, err := shim.ReadAddress("address"); err == nil {
		sd.RegisterCallback(func(context.Context) error { return shim.RemoveSocket(address) })
	}
	return withFailpoints(ctx, s), nil
}

// newService is the service without its process-wide side effects (event
// forwarding, socket cleanup), over any runtime and backend: the unit tests
// build it with fakes.
func newService(ctx context.Context, ns string, sd shutdown.Service, rt interceptor, b Backend) *service {
	return &service{
		ctx:        ctx,
		ns:         ns,
		shutdown:   sd,
		events:     make(chan any, 128),
		containers: map[string]*entry{},
		runtime:    rt,
		backend:    b,
		trim:       newTrimmer(trimDelay, nil),
	}
}

// RegisterTTRPC registers the service with the shim's ttrpc server.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

func (s *service) get(id string) (*entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A nil entry is a container still being created: not there yet for
	// any other request (containerd's stats collector asks early).
	e := s.containers[id]
	if e == nil {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return e, nil
}

func (s *service) process(id, execID string) (*entry, Process, error) {
	e, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := e.c.Process(execID)
	if err != nil {
		return nil, nil, err
	}
	return e, p, nil
}

// Create runs the hooks pipeline over the bundle's spec and creates the container.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *taskAPI.CreateTaskResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "create", r.ID, retErr) }()
	s.mu.Lock()
	if _, ok := s.containers[r.ID]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("container %s: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	// Reserve the id so a concurrent Create of the same id fails at once.
	s.containers[r.ID] = nil
	s.mu.Unlock()
	s.backend.Prepare(ctx, false)
	defer func() {
		if retErr != nil {
			s.mu.Lock()
			delete(s.containers, r.ID)
			s.mu.Unlock()
		}
	}()

	clock := newPhaseClock()
	at := func(step string) error {
		clock.mark(step)
		return s.at(ctx, r.ID, step)
	}
	var rootfs []mount.Mount
	for _, m := range r.Rootfs {
		rootfs = append(rootfs, mount.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	spec, err := container.ReadSpec(r.Bundle)
	if err == nil {
		err = at("create.spec")
	}
	if err != nil {
		return nil, err
	}
	hc, undo, err := s.runtime.Intercept(ctx, r.ID, r.Bundle, r.Options, spec, s.sandboxPid)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil && undo != nil {
			if err := undo(context.WithoutCancel(ctx)); err != nil {
				log.G(ctx).WithError(err).WithField("container_id", r.ID).Warn("undo hooks")
			}
		}
	}()
	clock.pipeline(hc.Timings)
	if err := at("create.intercept"); err != nil {
		return nil, err
	}

	rootfs, err = s.runtime.RemapRootfs(r.Bundle, rootfs, hc.Result)
	if err == nil {
		err = at("create.remap")
	}
	if err != nil {
		return nil, err
	}
	var rec *recording
	var beforeInit func(string) error
	if hc.Result.Record != "" {
		beforeInit = func(dir string) (err error) {
			rec, err = s.runtime.watch(ctx, hc.Node, hc.Result.Record, dir)
			return err
		}
		defer func() {
			if retErr != nil && rec != nil {
				rec.cancel(ctx)
			}
		}()
	}
	// Exits are reported only once Create has decided: a process that dies
	// while Create fails (its stdio could not be set up) belongs to a
	// container containerd never saw, and one that dies between the
	// backend's Create and the registration below must still find its entry.
	var created Container // set when Create succeeds, before settled closes
	settled := make(chan struct{})
	defer close(settled)
	onExit := func(_ Container, p Process) {
		<-settled
		if created != nil {
			s.processExited(created, p)
		}
	}
	c, err := s.backend.Create(ctx, container.Config{
		ID:        r.ID,
		Namespace: s.ns,
		Bundle:    r.Bundle,
		Spec:      hc.Spec,
		Rootfs:    rootfs,
		Stdio:     container.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		StateRoot: s.runtime.StateRoot(),
		ExitBarrier: func() {
			s.lifecycleMu.Lock()
			//lint:ignore SA2001 a barrier: waits for whoever holds the lifecycle lock, guards nothing
			s.lifecycleMu.Unlock()
		},
		BeforeInit: beforeInit,
		Step:       at,
	}, Notify{
		Exit: onExit,
		OOM:  func(Container) { s.send(&eventstypes.TaskOOM{ContainerID: r.ID}) },
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer func() {
		if retErr != nil {
			// Before the pipeline's undo (deferred earlier, so run
			// later): what the pipeline set up outlives the container.
			if _, err := c.Delete(context.WithoutCancel(ctx)); err != nil {
				log.G(ctx).WithError(err).WithField("container_id", r.ID).Warn("delete container of a failed create")
			}
		}
	}()
	s.containers[r.ID] = &entry{c: c, pod: hc.Pod, undo: undo, res: hc.Result, rec: rec}
	s.mu.Unlock()
	if err := at("create.registered"); err != nil {
		return nil, err
	}
	created = c

	pid := c.Init().Pid()
	log.G(ctx).WithFields(log.Fields{
		"container_id": r.ID, "pod": hc.Pod.Name, "namespace": hc.Pod.Namespace,
		"seccomp": hc.Result.SeccompMode, "seccomp_profile": hc.Result.SeccompProfile,
		"apparmor": hc.Result.AppArmorState, "pid": pid, "record": hc.Result.Record,
		"phases": clock.String(),
	}).Info("container created")
	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid:         uint32(pid),
	})
	return &taskAPI.CreateTaskResponse{Pid: uint32(pid)}, nil
}

// sandboxPid is the running pid of the pod's sandbox, for containers joining it.
func (s *service) sandboxPid(sandboxID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.containers[sandboxID]; e != nil {
		return e.c.Init().Pid()
	}
	return 0
}

// Start starts the init or an exec process.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (_ *taskAPI.StartResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "start", r.ID, retErr) }()
	// A start ends the burst of a container's or an exec's creation.
	defer s.trim.kick()
	e, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	step := "start"
	if r.ExecID != "" {
		step = "exec.start"
	}
	if err := s.at(ctx, r.ID, step); err != nil {
		return nil, err
	}
	if err := s.start(ctx, e, p, r); err != nil {
		if r.ExecID != "" && p.Status() == container.Running {
			// The exec ran before its start failed (its stdio could not
			// be finished) and was killed. Its exit is recorded only once
			// the lifecycle lock is free, so wait for it here: a caller
			// that deletes the failed exec next must find it stopped
			// (containerd's client does not kill a process whose start
			// returned no pid).
			select {
			case <-p.Done():
			case <-ctx.Done():
			}
		}
		return nil, err
	}
	return &taskAPI.StartResponse{Pid: uint32(p.Pid())}, nil
}

// start starts the init or an exec and publishes its start, under the
// lifecycle lock, so that no exit of it is published first.
func (s *service) start(ctx context.Context, e *entry, p Process, r *taskAPI.StartRequest) error {
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	if r.ExecID == "" {
		if err := e.c.Start(ctx); err != nil {
			return err
		}
		s.send(&eventstypes.TaskStart{ContainerID: r.ID, Pid: uint32(p.Pid())})
		return nil
	}
	if err := e.c.StartExec(ctx, p); err != nil {
		return err
	}
	s.send(&eventstypes.TaskExecStarted{ContainerID: r.ID, ExecID: r.ExecID, Pid: uint32(p.Pid())})
	return nil
}

// processExited publishes exits. The init's exit waits for the container's
// execs so that containerd sees every exec exit before the task's own.
func (s *service) processExited(c Container, p Process) {
	if p.ExecID() == "" {
		for _, x := range c.RunningExecs() {
			<-x.Done()
		}
		// Every process of the container is gone: the recording is whole.
		s.mu.Lock()
		e := s.containers[c.ID()]
		s.mu.Unlock()
		if e != nil && e.rec != nil {
			s.finishRecording(s.ctx, c.ID(), e)
		}
	}
	s.lifecycleMu.Lock()
	defer s.lifecycleMu.Unlock()
	info, _ := p.Exit()
	id := p.ExecID()
	if id == "" {
		id = c.ID()
	}
	s.send(&eventstypes.TaskExit{
		ContainerID: c.ID(),
		ID:          id,
		Pid:         uint32(info.Pid),
		ExitStatus:  uint32(info.ExitStatus),
		ExitedAt:    protobuf.ToTimestamp(info.ExitedAt),
	})
}

// finishRecording ends e's recording. A recording only ever comes from
// (*Runtime).watch, so the runtime that made it is a *Runtime.
func (s *service) finishRecording(ctx context.Context, id string, e *entry) {
	rt, _ := s.runtime.(*Runtime)
	e.rec.finish(ctx, rt, id, e.pod)
}

// Delete deletes an exec process, or the container with its init.
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (_ *taskAPI.DeleteResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "delete", r.ID, retErr) }()
	defer s.trim.kick()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	step := "delete"
	if r.ExecID != "" {
		step = "exec.delete"
	}
	if err := s.at(ctx, r.ID, step); err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		info, err := e.c.DeleteExec(ctx, r.ExecID)
		if err != nil {
			return nil, err
		}
		return &taskAPI.DeleteResponse{Pid: uint32(info.Pid), ExitStatus: uint32(info.ExitStatus), ExitedAt: protobuf.ToTimestamp(info.ExitedAt)}, nil
	}
	info, err := e.c.Delete(ctx)
	if err != nil {
		return nil, err
	}
	if e.rec != nil {
		// A container deleted before its exit was seen (or never started)
		// still ends its recording; the profile is in the store when
		// Delete returns, for whoever looks next.
		s.finishRecording(ctx, r.ID, e)
		e.rec.wait()
	}
	if e.undo != nil {
		if err := e.undo(ctx); err != nil {
			log.G(ctx).WithError(err).WithField("container_id", r.ID).Warn("release container resources")
		}
	}
	s.mu.Lock()
	delete(s.containers, r.ID)
	s.mu.Unlock()
	s.send(&eventstypes.TaskDelete{
		ContainerID: r.ID,
		Pid:         uint32(info.Pid),
		ExitStatus:  uint32(info.ExitStatus),
		ExitedAt:    protobuf.ToTimestamp(info.ExitedAt),
	})
	return &taskAPI.DeleteResponse{Pid: uint32(info.Pid), ExitStatus: uint32(info.ExitStatus), ExitedAt: protobuf.ToTimestamp(info.ExitedAt)}, nil
}

// Exec adds an exec process to a container.
func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "exec", r.ID, retErr) }()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	s.backend.Prepare(ctx, true)
	if r.Spec == nil {
		return nil, fmt.Errorf("exec %s: spec: missing: %w", r.ExecID, errdefs.ErrInvalidArgument)
	}
	v, err := typeurl.UnmarshalAny(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("exec %s: spec: %w: %w", r.ExecID, err, errdefs.ErrInvalidArgument)
	}
	sp, ok := v.(*specs.Process)
	if !ok {
		return nil, fmt.Errorf("exec %s: spec: %T is not a process: %w", r.ExecID, v, errdefs.ErrInvalidArgument)
	}
	if err := s.at(ctx, r.ID, "exec"); err != nil {
		return nil, err
	}
	if _, err := e.c.Exec(ctx, r.ExecID, sp, container.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}); err != nil {
		return nil, err
	}
	s.send(&eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return empty, nil
}

// State reports a process's state.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (_ *taskAPI.StateResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "state", r.ID, retErr) }()
	e, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	st := apitask.Status_UNKNOWN
	switch p.Status() {
	case container.Created:
		st = apitask.Status_CREATED
	case container.Running:
		st = apitask.Status_RUNNING
		if r.ExecID == "" && e.c.Paused() {
			st = apitask.Status_PAUSED
		}
	case container.Stopped, container.Deleted:
		st = apitask.Status_STOPPED
	}
	info, _ := p.Exit()
	return &taskAPI.StateResponse{
		ID:         r.ID,
		Bundle:     e.c.Bundle(),
		Pid:        uint32(p.Pid()),
		Status:     st,
		Stdin:      p.Stdio().Stdin,
		Stdout:     p.Stdio().Stdout,
		Stderr:     p.Stdio().Stderr,
		Terminal:   p.Stdio().Terminal,
		ExitStatus: uint32(info.ExitStatus),
		ExitedAt:   protobuf.ToTimestamp(info.ExitedAt),
		ExecID:     r.ExecID,
	}, nil
}

// Wait blocks until a process exits.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (_ *taskAPI.WaitResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "wait", r.ID, retErr) }()
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	info, _ := p.Exit()
	return &taskAPI.WaitResponse{ExitStatus: uint32(info.ExitStatus), ExitedAt: protobuf.ToTimestamp(info.ExitedAt)}, nil
}

// Kill signals a process, or with All every process of the container.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "kill", r.ID, retErr) }()
	e, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	sig := syscall.Signal(r.Signal)
	if r.ExecID == "" {
		err = e.c.Kill(ctx, sig, r.All)
	} else {
		err = p.Kill(sig)
	}
	if err != nil {
		return nil, err
	}
	return empty, nil
}

// Pids lists the container's processes, with their exec IDs.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (_ *taskAPI.PidsResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "pids", r.ID, retErr) }()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	pids, err := e.c.Pids(ctx)
	if err != nil {
		return nil, err
	}
	execOf := map[int]string{}
	for _, x := range e.c.RunningExecs() {
		execOf[x.Pid()] = x.ExecID()
	}
	var ps []*apitask.ProcessInfo
	for _, pid := range pids {
		pi := &apitask.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok {
			a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id})
			if err != nil {
				return nil, err
			}
			pi.Info = a
		}
		ps = append(ps, pi)
	}
	return &taskAPI.PidsResponse{Processes: ps}, nil
}

// Pause freezes the container.
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "pause", r.ID, retErr) }()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := e.c.Pause(ctx); err != nil {
		return nil, err
	}
	s.send(&eventstypes.TaskPaused{ContainerID: r.ID})
	return empty, nil
}

// Resume thaws the container.
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "resume", r.ID, retErr) }()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := e.c.Resume(ctx); err != nil {
		return nil, err
	}
	s.send(&eventstypes.TaskResumed{ContainerID: r.ID})
	return empty, nil
}

// Checkpoint is not supported: stockade does not ship CRIU.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*ptypes.Empty, error) {
	return nil, errgrpc.ToGRPC(fmt.Errorf("checkpoint: %w", errdefs.ErrNotImplemented))
}

// ResizePty resizes a process's terminal.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "resize", r.ID, retErr) }()
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Resize(r.Width, r.Height); err != nil {
		return nil, err
	}
	return empty, nil
}

// CloseIO closes a process's stdin.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "closeio", r.ID, retErr) }()
	_, p, err := s.process(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		p.CloseStdin()
	}
	return empty, nil
}

// Update changes the container's resource limits.
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (_ *ptypes.Empty, retErr error) {
	defer func() { retErr = toGRPC(ctx, "update", r.ID, retErr) }()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if r.Resources == nil {
		return nil, fmt.Errorf("resources: missing: %w", errdefs.ErrInvalidArgument)
	}
	v, err := typeurl.UnmarshalAny(r.Resources)
	if err != nil {
		return nil, fmt.Errorf("resources: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	res, ok := v.(*specs.LinuxResources)
	if !ok {
		return nil, fmt.Errorf("resources: %T is not linux resources: %w", v, errdefs.ErrInvalidArgument)
	}
	if err := e.c.Update(ctx, res); err != nil {
		return nil, err
	}
	return empty, nil
}

// Stats returns cgroup metrics in containerd's types.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (_ *taskAPI.StatsResponse, retErr error) {
	defer func() { retErr = toGRPC(ctx, "stats", r.ID, retErr) }()
	e, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	m, err := e.c.Stats(ctx)
	if err != nil {
		return nil, err
	}
	a, err := typeurl.MarshalAnyToProto(m)
	if err != nil {
		return nil, err
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}

// Connect returns the shim's and the task's pids.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	var pid uint32
	if e, err := s.get(r.ID); err == nil {
		pid = uint32(e.c.Init().Pid())
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: pid}, nil
}

// Shutdown stops the shim once it serves no container.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*ptypes.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Entries being created count too: their Create is still in flight.
	if len(s.containers) > 0 {
		return empty, nil
	}
	s.shutdown.Shutdown()
	return empty, nil
}

func (s *service) send(e any) { s.events <- e }

// forward publishes events in order, off the request path.
func (s *service) forward(ctx context.Context, publisher shim.Publisher) {
	ctx = namespaces.WithNamespace(context.Background(), s.ns)
	defer publisher.Close()
	publish := func(e any) {
		if err := publisher.Publish(ctx, runtime.GetTopic(e), e); err != nil {
			log.G(ctx).WithError(err).Error("post event")
		}
	}
	for {
		select {
		case e := <-s.events:
			publish(e)
		case <-s.shutdown.Done():
			for {
				select {
				case e := <-s.events:
					publish(e)
				default:
					return
				}
			}
		}
	}
}

// toGRPC is the one place errors leave the shim: logged with the container
// and converted to a gRPC status carrying the errdefs kind.
func toGRPC(ctx context.Context, op, id string, err error) error {
	if err == nil {
		return nil
	}
	log.G(ctx).WithError(err).WithFields(log.Fields{"container_id": id, "op": op}).Debug("request failed")
	return errgrpc.ToGRPC(err)
}
