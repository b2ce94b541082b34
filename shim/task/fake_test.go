package task

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/shim/container"
)

// fakeRuntime stands in for the hooks pipeline: it counts what it was asked
// to do and to undo, and fails where a test tells it to.
type fakeRuntime struct {
	mu          sync.Mutex
	intercepted int
	undone      int
	failAt      string // "intercept", "remap", "undo"
}

func (f *fakeRuntime) Intercept(ctx context.Context, id, bundle string, opts *anypb.Any, spec *specs.Spec, sandboxPid func(string) int) (*hooks.Container, hooks.Undo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "intercept" {
		// The real pipeline undoes its own steps when one fails.
		return nil, nil, fmt.Errorf("intercept: injected: %w", errdefs.ErrInvalidArgument)
	}
	f.intercepted++
	undo := func(context.Context) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.undone++
		return nil
	}
	return &hooks.Container{ID: id, Bundle: bundle, Spec: spec, Node: &config.Config{}}, undo, nil
}

func (f *fakeRuntime) RemapRootfs(bundle string, ms []mount.Mount, res hooks.Result) ([]mount.Mount, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "remap" {
		return nil, fmt.Errorf("remap: injected: %w", errdefs.ErrFailedPrecondition)
	}
	return ms, nil
}

func (f *fakeRuntime) StateRoot() string         { return "/nonexistent/state" }
func (f *fakeRuntime) Close(ctx context.Context) {}
func (f *fakeRuntime) watch(ctx context.Context, node *config.Config, name, dir string) (*recording, error) {
	return nil, fmt.Errorf("record mode is not faked: %w", errdefs.ErrNotImplemented)
}

func (f *fakeRuntime) counts() (intercepted, undone int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.intercepted, f.undone
}

// fakeBackend creates fakeContainers. It keeps shim/container's contract:
// an exit is recorded only after cfg.ExitBarrier returns, Done closes before
// the Exit callback, an init's exit kills the container's running execs,
// and a paused container refuses to start an exec.
type fakeBackend struct {
	mu        sync.Mutex
	fail      error
	block     chan struct{} // if set, Create waits on it (a slow create)
	entered   chan struct{} // if set, closed when Create is entered
	nextPid   int
	byID      map[string]*fakeContainer
	exitAtRun map[string]int // container or exec id → exit status at its start
	prepares  []bool         // Prepare calls: exec or not
}

func (b *fakeBackend) Prepare(_ context.Context, exec bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prepares = append(b.prepares, exec)
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{nextPid: 1000, byID: map[string]*fakeContainer{}, exitAtRun: map[string]int{}}
}

func (b *fakeBackend) Create(ctx context.Context, cfg container.Config, on Notify) (Container, error) {
	if b.entered != nil {
		close(b.entered)
	}
	if b.block != nil {
		<-b.block
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != nil {
		return nil, b.fail
	}
	if cfg.BeforeInit != nil {
		if err := cfg.BeforeInit("/nonexistent/cgroup"); err != nil {
			return nil, err
		}
	}
	for _, step := range []string{"create.rootfs", "create.libcontainer", "create.stdio", "create.init"} {
		if cfg.Step != nil {
			if err := cfg.Step(step); err != nil {
				return nil, err
			}
		}
	}
	b.nextPid++
	c := &fakeContainer{b: b, cfg: cfg, on: on, execs: map[string]*fakeProcess{}}
	c.init = &fakeProcess{c: c, stdio: cfg.Stdio, pid: b.nextPid, done: make(chan struct{})}
	b.byID[cfg.ID] = c
	return c, nil
}

func (b *fakeBackend) container(id string) *fakeContainer {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[id]
}

type fakeContainer struct {
	b   *fakeBackend
	cfg container.Config
	on  Notify

	mu      sync.Mutex
	init    *fakeProcess
	execs   map[string]*fakeProcess
	paused  bool
	deleted bool
	killed  []syscall.Signal
}

type fakeProcess struct {
	c     *fakeContainer
	id    string
	stdio container.Stdio

	mu     sync.Mutex
	status container.Status
	pid    int
	info   container.ExitInfo
	done   chan struct{}
	stdin  bool // stdin closed
}

func (c *fakeContainer) ID() string     { return c.cfg.ID }
func (c *fakeContainer) Bundle() string { return c.cfg.Bundle }
func (c *fakeContainer) Init() Process  { return c.init }
func (c *fakeContainer) Paused() bool   { c.mu.Lock(); defer c.mu.Unlock(); return c.paused }
func (c *fakeContainer) Start(ctx context.Context) error {
	p := c.init
	p.mu.Lock()
	if p.status != container.Created {
		p.mu.Unlock()
		return fmt.Errorf("container %s: %s: %w", c.ID(), p.status, errdefs.ErrFailedPrecondition)
	}
	p.status = container.Running
	p.mu.Unlock()
	c.maybeExitAtRun(c.ID(), p)
	return nil
}

// maybeExitAtRun makes p exit the moment it starts when the test asked for
// it: the exit runs on its own goroutine, as libcontainer's wait does, and
// Start returns only once that goroutine had every chance to finish first.
// A service that did not hold exits back until Start published its event
// would publish the exit first.
func (c *fakeContainer) maybeExitAtRun(key string, p *fakeProcess) {
	c.b.mu.Lock()
	code, ok := c.b.exitAtRun[key]
	c.b.mu.Unlock()
	if !ok {
		return
	}
	started, finished := make(chan struct{}), make(chan struct{})
	go func() {
		close(started)
		c.exit(p, code)
		close(finished)
	}()
	<-started
	select {
	case <-finished:
	case <-time.After(100 * time.Millisecond):
	}
}

func (c *fakeContainer) Exec(ctx context.Context, id string, sp *specs.Process, stdio container.Stdio) (Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.execs[id]; ok {
		return nil, fmt.Errorf("exec %s: %w", id, errdefs.ErrAlreadyExists)
	}
	c.b.mu.Lock()
	c.b.nextPid++
	pid := c.b.nextPid
	c.b.mu.Unlock()
	p := &fakeProcess{c: c, id: id, stdio: stdio, pid: pid, done: make(chan struct{})}
	c.execs[id] = p
	return p, nil
}

func (c *fakeContainer) StartExec(ctx context.Context, pp Process) error {
	p := pp.(*fakeProcess)
	if c.Paused() {
		return fmt.Errorf("exec %s: container %s is paused: %w", p.id, c.ID(), errdefs.ErrFailedPrecondition)
	}
	if c.cfg.Step != nil {
		if err := c.cfg.Step("exec.stdio"); err != nil {
			return err
		}
		if err := c.cfg.Step("exec.process"); err != nil {
			// Like shim/container: the process ran and is killed; its
			// exit is recorded through the barrier, as every exit is.
			p.mu.Lock()
			p.status = container.Running
			p.mu.Unlock()
			go c.exit(p, 137)
			return err
		}
	}
	p.mu.Lock()
	if p.status != container.Created {
		p.mu.Unlock()
		return fmt.Errorf("exec %s: %s: %w", p.id, p.status, errdefs.ErrFailedPrecondition)
	}
	p.status = container.Running
	p.mu.Unlock()
	c.maybeExitAtRun(p.id, p)
	return nil
}

func (c *fakeContainer) Process(execID string) (Process, error) {
	if execID == "" {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %s: %w", execID, errdefs.ErrNotFound)
	}
	return p, nil
}

func (c *fakeContainer) RunningExecs() []Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []Process
	for _, p := range c.execs {
		if p.Status() == container.Running {
			ps = append(ps, p)
		}
	}
	return ps
}

func (c *fakeContainer) DeleteExec(ctx context.Context, id string) (container.ExitInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[id]
	if !ok {
		return container.ExitInfo{}, fmt.Errorf("exec %s: %w", id, errdefs.ErrNotFound)
	}
	if p.Status() == container.Running {
		return container.ExitInfo{}, fmt.Errorf("exec %s is running: %w", id, errdefs.ErrFailedPrecondition)
	}
	delete(c.execs, id)
	info, _ := p.Exit()
	return info, nil
}

func (c *fakeContainer) Delete(ctx context.Context) (container.ExitInfo, error) {
	switch c.init.Status() {
	case container.Running:
		return container.ExitInfo{}, fmt.Errorf("container %s is running: %w", c.ID(), errdefs.ErrFailedPrecondition)
	case container.Created:
		// Like the real one: a created init is killed and waited for.
		go c.exit(c.init, 137)
		<-c.init.done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return container.ExitInfo{}, fmt.Errorf("container %s: %w", c.ID(), errdefs.ErrNotFound)
	}
	c.deleted = true
	info, _ := c.init.Exit()
	return info, nil
}

func (c *fakeContainer) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	c.mu.Lock()
	c.killed = append(c.killed, sig)
	c.mu.Unlock()
	if c.init.Status() >= container.Stopped {
		return container.ErrProcessExited
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		go c.exit(c.init, 128+int(sig))
	}
	return nil
}

func (c *fakeContainer) Pause(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return fmt.Errorf("container %s: paused: %w", c.ID(), errdefs.ErrFailedPrecondition)
	}
	c.paused = true
	return nil
}

func (c *fakeContainer) Resume(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		return fmt.Errorf("container %s: not paused: %w", c.ID(), errdefs.ErrFailedPrecondition)
	}
	c.paused = false
	return nil
}

func (c *fakeContainer) Pids(ctx context.Context) ([]int, error) {
	pids := []int{c.init.Pid()}
	for _, p := range c.RunningExecs() {
		pids = append(pids, p.Pid())
	}
	return pids, nil
}

func (c *fakeContainer) Update(ctx context.Context, r *specs.LinuxResources) error { return nil }
func (c *fakeContainer) Stats(ctx context.Context) (any, error) {
	return nil, fmt.Errorf("stats: %w", errdefs.ErrNotImplemented)
}

// exit ends p the way shim/container's watch does.
func (c *fakeContainer) exit(p *fakeProcess, code int) {
	if b := c.cfg.ExitBarrier; b != nil {
		b()
	}
	p.mu.Lock()
	if p.status >= container.Stopped {
		p.mu.Unlock()
		return
	}
	p.status = container.Stopped
	p.info = container.ExitInfo{Pid: p.pid, ExitStatus: code, ExitedAt: time.Now()}
	p.mu.Unlock()
	close(p.done)
	if p.id == "" {
		// The init's exit kills what is left, as in a pid namespace.
		for _, x := range c.RunningExecs() {
			go c.exit(x.(*fakeProcess), 137)
		}
	}
	if c.on.Exit != nil {
		c.on.Exit(c, p)
	}
}

func (p *fakeProcess) ExecID() string         { return p.id }
func (p *fakeProcess) Stdio() container.Stdio { return p.stdio }
func (p *fakeProcess) Pid() int               { p.mu.Lock(); defer p.mu.Unlock(); return p.pid }
func (p *fakeProcess) Status() container.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}
func (p *fakeProcess) Exit() (container.ExitInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info, p.status >= container.Stopped
}
func (p *fakeProcess) Done() <-chan struct{} { return p.done }
func (p *fakeProcess) Kill(sig syscall.Signal) error {
	if p.Status() >= container.Stopped {
		return container.ErrProcessExited
	}
	go p.c.exit(p, 128+int(sig))
	return nil
}
func (p *fakeProcess) Resize(width, height uint32) error {
	return fmt.Errorf("no terminal: %w", errdefs.ErrFailedPrecondition)
}
func (p *fakeProcess) CloseStdin() { p.mu.Lock(); p.stdin = true; p.mu.Unlock() }

// harness is a service over fakes.
type harness struct {
	t  *testing.T
	s  *service
	rt *fakeRuntime
	b  *fakeBackend
	sd shutdown.Service
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, sd := shutdown.WithShutdown(context.Background())
	t.Cleanup(sd.Shutdown)
	rt, b := &fakeRuntime{}, newFakeBackend()
	return &harness{t: t, s: newService(ctx, "test", sd, rt, b), rt: rt, b: b, sd: sd}
}

// bundle writes a minimal valid bundle.
func (h *harness) bundle() string { return h.bundleWith(nil) }

func (h *harness) bundleWith(annotations map[string]string) string {
	h.t.Helper()
	dir := h.t.TempDir()
	spec := specs.Spec{
		Annotations: annotations,
		Version:     specs.Version,
		Process:     &specs.Process{Args: []string{"true"}, Cwd: "/"},
		Root:        &specs.Root{Path: "rootfs"},
		Linux:       &specs.Linux{},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		h.t.Fatal(err)
	}
	return dir
}

// events returns the events published so far, without waiting.
func (h *harness) events() []any {
	var out []any
	for {
		select {
		case e := <-h.s.events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// waitEvents waits for n more events (a test that hangs here shows the
// service lost an event; go test's own timeout ends it).
func (h *harness) waitEvents(n int) []any {
	h.t.Helper()
	out := make([]any, 0, n)
	for len(out) < n {
		out = append(out, <-h.s.events)
	}
	return out
}
