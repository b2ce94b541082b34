package task

import (
	"context"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/shim/container"
)

// Backend is the seam between the task service and the thing that runs
// containers: shim/container (libcontainer, root) in the shim, a fake in the
// service's unit tests. It is what the service really uses, no more.
type Backend interface {
	// Create creates a container whose init waits for Start. cfg's OnExit
	// and OnOOM are ignored: exits and OOM kills are reported to on.
	Create(ctx context.Context, cfg container.Config, on Notify) (Container, error)
	// Prepare is called as a Create or an Exec (exec true) arrives, before
	// any of its work: it may start, in the background, slow kernel work
	// that the creation will need (container.WarmCgroupAttach). It never
	// fails.
	Prepare(ctx context.Context, exec bool)
}

// Notify receives what happens to a container after Create.
type Notify struct {
	// Exit is called once per process exit, after the exit is recorded
	// (Process.Done is closed, Process.Exit reports it).
	Exit func(Container, Process)
	// OOM is called when the kernel OOM-kills in the container.
	OOM func(Container)
}

// Container is one container as the task service sees it.
type Container interface {
	ID() string
	Bundle() string
	Init() Process
	Start(ctx context.Context) error
	Exec(ctx context.Context, id string, sp *specs.Process, stdio container.Stdio) (Process, error)
	StartExec(ctx context.Context, p Process) error
	Process(execID string) (Process, error)
	RunningExecs() []Process
	DeleteExec(ctx context.Context, id string) (container.ExitInfo, error)
	Delete(ctx context.Context) (container.ExitInfo, error)
	Kill(ctx context.Context, sig syscall.Signal, all bool) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	Paused() bool
	Pids(ctx context.Context) ([]int, error)
	Update(ctx context.Context, r *specs.LinuxResources) error
	Stats(ctx context.Context) (any, error)
}

// Process is a container's init or one of its exec processes.
type Process interface {
	// ExecID is the exec ID, "" for the init.
	ExecID() string
	Stdio() container.Stdio
	Pid() int
	Status() container.Status
	Exit() (container.ExitInfo, bool)
	Done() <-chan struct{}
	Kill(sig syscall.Signal) error
	Resize(width, height uint32) error
	CloseStdin()
}

// interceptor is what the service uses of Runtime: the hooks pipeline and
// the rootfs remapping it decides. Tests replace it to count undos.
type interceptor interface {
	Intercept(ctx context.Context, id, bundle string, opts *anypb.Any, spec *specs.Spec, sandboxPid func(string) int) (*hooks.Container, hooks.Undo, error)
	RemapRootfs(bundle string, ms []mount.Mount, res hooks.Result) ([]mount.Mount, error)
	StateRoot() string
	Close(ctx context.Context)
	watch(ctx context.Context, node *config.Config, name, dir string) (*recording, error)
}

var (
	_ interceptor = (*Runtime)(nil)
	_ Backend     = libcontainerBackend{}
	_ Container   = (*lcContainer)(nil)
	_ Process     = lcProcess{}
)

// libcontainerBackend is the real Backend: shim/container.
type libcontainerBackend struct{}

func (libcontainerBackend) Prepare(ctx context.Context, exec bool) {
	container.WarmCgroupAttach(ctx, exec)
}

func (libcontainerBackend) Create(ctx context.Context, cfg container.Config, on Notify) (Container, error) {
	// The wrappers are made once per container and process, so that the
	// service gets the same values back in its callbacks.
	lc := &lcContainer{}
	if on.Exit != nil {
		cfg.OnExit = func(_ *container.Container, p *container.Process) { on.Exit(lc, lcProcess{p}) }
	} else {
		cfg.OnExit = nil
	}
	if on.OOM != nil {
		cfg.OnOOM = func(*container.Container) { on.OOM(lc) }
	} else {
		cfg.OnOOM = nil
	}
	c, err := container.Create(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// No callback can run before this assignment is seen: the init has not
	// been started (it waits for Start) and OOM needs a running process;
	// a failed create after the init was forked returns an error, and the
	// service drops the container without looking at it.
	lc.c = c
	return lc, nil
}

// lcContainer adapts *container.Container to Container.
type lcContainer struct{ c *container.Container }

func (l *lcContainer) ID() string                      { return l.c.ID }
func (l *lcContainer) Bundle() string                  { return l.c.Bundle }
func (l *lcContainer) Init() Process                   { return lcProcess{l.c.Init()} }
func (l *lcContainer) Start(ctx context.Context) error { return l.c.Start(ctx) }
func (l *lcContainer) Exec(ctx context.Context, id string, sp *specs.Process, stdio container.Stdio) (Process, error) {
	p, err := l.c.Exec(ctx, id, sp, stdio)
	if err != nil {
		return nil, err
	}
	return lcProcess{p}, nil
}

func (l *lcContainer) StartExec(ctx context.Context, p Process) error {
	return l.c.StartExec(ctx, p.(lcProcess).p)
}

func (l *lcContainer) Process(execID string) (Process, error) {
	p, err := l.c.Process(execID)
	if err != nil {
		return nil, err
	}
	return lcProcess{p}, nil
}

func (l *lcContainer) RunningExecs() []Process {
	var ps []Process
	for _, p := range l.c.RunningExecs() {
		ps = append(ps, lcProcess{p})
	}
	return ps
}

func (l *lcContainer) DeleteExec(ctx context.Context, id string) (container.ExitInfo, error) {
	return l.c.DeleteExec(ctx, id)
}
func (l *lcContainer) Delete(ctx context.Context) (container.ExitInfo, error) { return l.c.Delete(ctx) }
func (l *lcContainer) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	return l.c.Kill(ctx, sig, all)
}
func (l *lcContainer) Pause(ctx context.Context) error         { return l.c.Pause(ctx) }
func (l *lcContainer) Resume(ctx context.Context) error        { return l.c.Resume(ctx) }
func (l *lcContainer) Paused() bool                            { return l.c.Paused() }
func (l *lcContainer) Pids(ctx context.Context) ([]int, error) { return l.c.Pids(ctx) }
func (l *lcContainer) Stats(ctx context.Context) (any, error)  { return l.c.Stats(ctx) }
func (l *lcContainer) Update(ctx context.Context, r *specs.LinuxResources) error {
	return l.c.Update(ctx, r)
}

// lcProcess adapts *container.Process to Process.
type lcProcess struct{ p *container.Process }

func (l lcProcess) ExecID() string                    { return l.p.ID }
func (l lcProcess) Stdio() container.Stdio            { return l.p.Stdio }
func (l lcProcess) Pid() int                          { return l.p.Pid() }
func (l lcProcess) Status() container.Status          { return l.p.Status() }
func (l lcProcess) Exit() (container.ExitInfo, bool)  { return l.p.Exit() }
func (l lcProcess) Done() <-chan struct{}             { return l.p.Done() }
func (l lcProcess) Kill(sig syscall.Signal) error     { return l.p.Kill(sig) }
func (l lcProcess) Resize(width, height uint32) error { return l.p.Resize(width, height) }
func (l lcProcess) CloseStdin()                       { l.p.CloseStdin() }
