package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stockade-dev/stockade/internal/ocimount"
)

// Config describes one container to create.
type Config struct {
	ID        string
	Namespace string // containerd namespace
	Bundle    string
	// Spec is the (already hooked) OCI spec.
	Spec *specs.Spec
	// Rootfs are the mounts containerd prepared; mounted on Bundle/rootfs.
	Rootfs []mount.Mount
	Stdio  Stdio
	// StateRoot is libcontainer's state root (one directory per container).
	StateRoot string
	// OnExit is called once for every process (init and execs) that exits.
	OnExit func(c *Container, p *Process)
	// OnOOM is called when the kernel OOM-kills in the container's cgroup.
	OnOOM func(c *Container)
	// ExitBarrier, if set, is called before an exit is recorded; it returns
	// once no Start or StartExec is in flight.
	ExitBarrier func()
	// BeforeInit, if set, is called with the container's cgroup v2
	// directory, created empty, before the init process joins it: what
	// watches the cgroup from there sees every process of the container.
	BeforeInit func(cgroupDir string) error
	// Step, if set, is called at each step of Create and of an exec's
	// start; an error fails the operation there. Fault-injection tests use
	// it to prove that every step's failure is undone.
	Step func(step string) error
}

// step runs cfg.Step.
func (c *Config) step(name string) error {
	if c.Step == nil {
		return nil
	}
	if err := c.Step(name); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Container is one running (or created, or stopped) container.
type Container struct {
	ID     string
	Bundle string
	Spec   *specs.Spec

	cfg     Config
	lc      *libcontainer.Container
	rootfs  string // mounted rootfs target, "" if none was mounted
	initP   *Process
	mu      sync.Mutex
	execs   map[string]*Process
	deleted bool

	// freezeMu serialises everything that changes or depends on the
	// cgroup freezer: Pause, Resume, Kill with all, and an exec's start
	// (a process started into a frozen cgroup would block its start).
	freezeMu sync.Mutex
}

// Create mounts the rootfs, creates the libcontainer container and starts its
// init, which waits for Start before it execs the user's process. On any
// error, everything done so far is undone: nothing is mounted, no cgroup or
// state directory and no process is left behind.
func Create(ctx context.Context, cfg Config) (_ *Container, retErr error) {
	if cfg.Spec == nil {
		return nil, fmt.Errorf("spec: missing: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Spec.Root == nil {
		return nil, fmt.Errorf("spec root: missing: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Spec.Linux == nil {
		return nil, fmt.Errorf("spec linux: missing: %w", errdefs.ErrInvalidArgument)
	}
	lp, err := newLibcontainerProcess(cfg.Spec.Process)
	if err != nil {
		return nil, err
	}
	lp.Init = true

	c := &Container{ID: cfg.ID, Bundle: cfg.Bundle, Spec: cfg.Spec, cfg: cfg, execs: map[string]*Process{}}

	// Paths in the spec are relative to the bundle; libcontainer resolves
	// them against the process cwd, which in a shim serving a whole pod is
	// not this container's bundle. Make them absolute first.
	if !filepath.IsAbs(cfg.Spec.Root.Path) {
		cfg.Spec.Root.Path = filepath.Join(cfg.Bundle, cfg.Spec.Root.Path)
	}
	for i, m := range cfg.Spec.Mounts {
		if m.Source != "" && !filepath.IsAbs(m.Source) && ocimount.IsBind(m) {
			cfg.Spec.Mounts[i].Source = filepath.Join(cfg.Bundle, m.Source)
		}
	}

	if len(cfg.Rootfs) > 0 {
		if err := c.mountRootfs(ctx); err != nil {
			return nil, err
		}
		defer func() {
			if retErr != nil {
				c.unmountRootfs(ctx)
			}
		}()
	}
	if err := cfg.step("create.rootfs"); err != nil {
		return nil, err
	}

	lcfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: cfg.ID,
		Spec:       cfg.Spec,
	})
	if err != nil {
		return nil, fmt.Errorf("spec: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	for i, l := range lcfg.Labels {
		if strings.HasPrefix(l, "bundle=") {
			lcfg.Labels[i] = "bundle=" + cfg.Bundle
		}
	}

	lc, err := libcontainer.Create(cfg.StateRoot, cfg.ID, lcfg)
	if err != nil {
		if errors.Is(err, libcontainer.ErrExist) {
			return nil, fmt.Errorf("container %s: %w", cfg.ID, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create container %s: %w", cfg.ID, translate(err))
	}
	c.lc = lc
	defer func() {
		if retErr != nil {
			c.destroy(ctx)
		}
	}()
	// libcontainer keeps the filter in its own form (lcfg.Seccomp) for the
	// init and every exec; the spec's copy, tens of KiB per container in a
	// shim that lives as long as the pod, is never read again.
	cfg.Spec.Linux.Seccomp = nil

	if err := cfg.step("create.libcontainer"); err != nil {
		return nil, err
	}
	rootUID, err := lcfg.HostRootUID()
	if err != nil {
		return nil, fmt.Errorf("host root uid: %w", err)
	}
	rootGID, err := lcfg.HostRootGID()
	if err != nil {
		return nil, fmt.Errorf("host root gid: %w", err)
	}
	if cfg.BeforeInit != nil {
		dir, err := unifiedCgroup(lcfg.Cgroups)
		if err != nil {
			return nil, err
		}
		if err := cfg.BeforeInit(dir); err != nil {
			return nil, err
		}
	}
	pio, err := newProcessIO(ctx, cfg.ID, cfg.Namespace, cfg.Stdio, lp, rootUID, rootGID)
	if err != nil {
		return nil, err
	}
	if err := cfg.step("create.stdio"); err != nil {
		pio.Close()
		return nil, err
	}
	p := &Process{Stdio: cfg.Stdio, c: c, spec: cfg.Spec.Process, lp: lp, io: pio, done: make(chan struct{})}
	startOrphanReaper(ctx)
	spawnMu.RLock()
	if err := lc.Start(lp); err != nil {
		spawnMu.RUnlock()
		pio.Close()
		return nil, fmt.Errorf("start init of %s: %w", cfg.ID, startError(err))
	}
	pid, _ := lp.Pid()
	knownPids.add(pid)
	spawnMu.RUnlock()
	p.pid = pid
	c.initP = p
	go p.watch(ctx, func(p *Process) { c.processExited(ctx, p) })
	err = pio.afterStart(ctx)
	if err == nil {
		err = cfg.step("create.init")
	}
	if err != nil {
		_ = lc.Signal(syscall.SIGKILL)
		<-p.done
		pio.Close()
		return nil, err
	}
	c.watchOOM(ctx)
	return c, nil
}

// Init is the container's init process.
func (c *Container) Init() *Process { return c.initP }

// Start lets the init exec the user's process.
func (c *Container) Start(ctx context.Context) error {
	p := c.initP
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.status {
	case Created:
	case Running:
		return fmt.Errorf("container %s: already started: %w", c.ID, errdefs.ErrFailedPrecondition)
	default:
		return fmt.Errorf("container %s: %s: %w", c.ID, p.status, errdefs.ErrFailedPrecondition)
	}
	if err := c.lc.Exec(); err != nil {
		return fmt.Errorf("start %s: %w", c.ID, translate(err))
	}
	p.status = Running
	return nil
}

// Exec registers a new exec process; it starts with StartExec.
func (c *Container) Exec(ctx context.Context, id string, sp *specs.Process, stdio Stdio) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted {
		return nil, fmt.Errorf("container %s: deleted: %w", c.ID, errdefs.ErrNotFound)
	}
	if _, ok := c.execs[id]; ok {
		return nil, fmt.Errorf("exec %s in %s: %w", id, c.ID, errdefs.ErrAlreadyExists)
	}
	if st := c.initP.Status(); st != Running && st != Created {
		return nil, fmt.Errorf("container %s is %s: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	if sp == nil {
		return nil, fmt.Errorf("exec %s: process spec missing: %w", id, errdefs.ErrInvalidArgument)
	}
	// An exec runs under the container's AppArmor profile, whatever the
	// client asked for: clients copy the process from the spec containerd
	// stored, which never saw the generated profile (ctr asks for none,
	// CRI for its own default), and libcontainer has no container-wide
	// profile to fall back on (specconv leaves it empty), so the exec would
	// run unconfined.
	if c.Spec != nil && c.Spec.Process != nil {
		cp := *sp
		cp.ApparmorProfile = c.Spec.Process.ApparmorProfile
		sp = &cp
	}
	if _, err := newLibcontainerProcess(sp); err != nil {
		return nil, fmt.Errorf("exec %s: %w", id, err)
	}
	p := &Process{ID: id, Stdio: stdio, c: c, spec: sp, done: make(chan struct{})}
	c.execs[id] = p
	return p, nil
}

// StartExec starts a registered exec process.
func (c *Container) StartExec(ctx context.Context, p *Process) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != Created || p.lp != nil {
		return fmt.Errorf("exec %s: %s: %w", p.ID, p.status, errdefs.ErrFailedPrecondition)
	}
	if st := c.initP.Status(); st != Running {
		return fmt.Errorf("container %s is %s: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	// runc refuses to exec into a paused container: the new process would
	// join the frozen cgroup and its start would block until a Resume, with
	// the caller's locks held. Holding freezeMu until the process runs
	// keeps a Pause from freezing the cgroup under a starting exec.
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	if c.Paused() {
		return fmt.Errorf("exec %s: container %s is paused: %w", p.ID, c.ID, errdefs.ErrFailedPrecondition)
	}
	lp, err := newLibcontainerProcess(p.spec)
	if err != nil {
		return err
	}
	cfg := c.lc.Config()
	rootUID, _ := cfg.HostRootUID()
	rootGID, _ := cfg.HostRootGID()
	pio, err := newProcessIO(ctx, c.ID, c.cfg.Namespace, p.Stdio, lp, rootUID, rootGID)
	if err != nil {
		return err
	}
	if err := c.cfg.step("exec.stdio"); err != nil {
		pio.Close()
		return err
	}
	spawnMu.RLock()
	if err := c.lc.Run(lp); err != nil {
		spawnMu.RUnlock()
		pio.Close()
		return fmt.Errorf("exec %s in %s: %w", p.ID, c.ID, startError(translate(err)))
	}
	p.lp, p.io = lp, pio
	p.pid, _ = lp.Pid()
	knownPids.add(p.pid)
	spawnMu.RUnlock()
	p.status = Running
	go p.watch(ctx, func(p *Process) { c.processExited(ctx, p) })
	err = pio.afterStart(ctx)
	if err == nil {
		err = c.cfg.step("exec.process")
	}
	if err != nil {
		_ = lp.Signal(syscall.SIGKILL)
		return err
	}
	return nil
}

// Process returns the init ("") or an exec process.
func (c *Container) Process(id string) (*Process, error) {
	if id == "" {
		return c.initP, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[id]
	if !ok {
		return nil, fmt.Errorf("exec %s in %s: %w", id, c.ID, errdefs.ErrNotFound)
	}
	return p, nil
}

// RunningExecs returns the exec processes that have not exited.
func (c *Container) RunningExecs() []*Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []*Process
	for _, p := range c.execs {
		if p.Status() == Running {
			ps = append(ps, p)
		}
	}
	return ps
}

// DeleteExec removes a finished (or never started) exec process.
func (c *Container) DeleteExec(ctx context.Context, id string) (ExitInfo, error) {
	c.mu.Lock()
	p, ok := c.execs[id]
	if !ok {
		c.mu.Unlock()
		return ExitInfo{}, fmt.Errorf("exec %s in %s: %w", id, c.ID, errdefs.ErrNotFound)
	}
	if p.Status() == Running {
		c.mu.Unlock()
		return ExitInfo{}, fmt.Errorf("exec %s in %s is running: %w", id, c.ID, errdefs.ErrFailedPrecondition)
	}
	delete(c.execs, id)
	c.mu.Unlock()
	p.release(ctx)
	info, _ := p.Exit()
	return info, nil
}

// Kill signals the init, or every process of the container when all is set.
func (c *Container) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	if !all {
		return c.initP.Kill(sig)
	}
	return c.killAll(ctx, sig)
}

// Pause freezes every process of the container.
func (c *Container) Pause(ctx context.Context) error {
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	return translate(c.lc.Pause())
}

// Resume thaws the container.
func (c *Container) Resume(ctx context.Context) error {
	c.freezeMu.Lock()
	defer c.freezeMu.Unlock()
	return translate(c.lc.Resume())
}

// Pids lists the host pids in the container's cgroup.
func (c *Container) Pids(ctx context.Context) ([]int, error) {
	pids, err := c.lc.Processes()
	return pids, translate(err)
}

// Delete removes a stopped or created container: its processes are killed
// (a created one), its cgroup and state removed and its rootfs unmounted.
func (c *Container) Delete(ctx context.Context) (ExitInfo, error) {
	p := c.initP
	switch p.Status() {
	case Running:
		return ExitInfo{}, fmt.Errorf("container %s is running: %w", c.ID, errdefs.ErrFailedPrecondition)
	case Created:
		_ = c.lc.Signal(syscall.SIGKILL)
		<-p.done
	}
	c.mu.Lock()
	if c.deleted {
		c.mu.Unlock()
		return ExitInfo{}, fmt.Errorf("container %s: %w", c.ID, errdefs.ErrNotFound)
	}
	c.deleted = true
	execs := c.execs
	c.execs = map[string]*Process{}
	c.mu.Unlock()
	for _, e := range execs {
		e.release(ctx)
	}
	p.release(ctx)
	c.destroy(ctx)
	c.unmountRootfs(ctx)
	info, _ := p.Exit()
	p.mu.Lock()
	p.status = Deleted
	p.mu.Unlock()
	return info, nil
}

// destroy kills what is left and removes the cgroup and libcontainer state.
func (c *Container) destroy(ctx context.Context) {
	if c.lc == nil {
		return
	}
	_ = c.lc.Signal(syscall.SIGKILL)
	if err := c.lc.Destroy(); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("destroy container")
	}
}

// processExited runs on every exit. The container's own reaction: when the
// init of a container without its own pid namespace exits, the processes
// left in it are killed, as the kernel would do in a pid namespace.
func (c *Container) processExited(ctx context.Context, p *Process) {
	if p.ID == "" {
		for _, e := range c.RunningExecs() {
			_ = e.lp.Signal(syscall.SIGKILL)
		}
	}
	if c.cfg.OnExit != nil {
		c.cfg.OnExit(c, p)
	}
}

func (c *Container) watchOOM(ctx context.Context) {
	if c.cfg.OnOOM == nil {
		return
	}
	ch, err := notifyOOM(c.memoryCgroupDir())
	if err != nil {
		log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("oom notifications unavailable")
		return
	}
	events := c.memoryEventsFile()
	go func() {
		delivered := false
		for range ch {
			delivered = true
			c.cfg.OnOOM(c)
		}
		// runc's cgroup v2 watcher stops as soon as the cgroup is empty.
		// The kernel rate-limits cgroup file notifications (one per 10 ms,
		// later ones deferred), so the memory.events change of an OOM kill
		// can arrive after the killed process emptied the cgroup, and be
		// missed (seen under emulation in the VM tier): look once more.
		if !delivered && events != "" && oomKilled(events) {
			c.cfg.OnOOM(c)
		}
	}()
}

// memoryCgroupDir is the container's memory cgroup: the v1 memory
// controller's directory, or its cgroup v2 directory; "" if it has none.
func (c *Container) memoryCgroupDir() string {
	st, err := c.lc.State()
	if err != nil {
		return ""
	}
	if cgroups.IsCgroup2UnifiedMode() {
		return st.CgroupPaths[""]
	}
	return st.CgroupPaths["memory"]
}

// memoryEventsFile is the container's cgroup v2 memory.events, "" where
// the container has no cgroup v2 memory controller.
func (c *Container) memoryEventsFile() string {
	m, err := manager.New(c.lc.Config().Cgroups)
	if err != nil {
		return ""
	}
	dir := m.Path("")
	if dir == "" {
		return ""
	}
	f := filepath.Join(dir, "memory.events")
	if _, err := os.Stat(f); err != nil {
		return ""
	}
	return f
}

// ReadSpec reads and decodes a bundle's config.json; errors name the file.
func ReadSpec(bundle string) (*specs.Spec, error) {
	return readSpec(filepath.Join(bundle, "config.json"))
}

// ReadAnnotations reads only the annotations of a bundle's config.json,
// leniently: cleanup after a dead shim and shim grouping must work even for
// a spec that Create would reject.
func ReadAnnotations(bundle string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return s.Annotations, nil
}

func readSpec(path string) (*specs.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return decodeSpec(path, data)
}

// Paused reports whether the container's cgroup is frozen.
func (c *Container) Paused() bool {
	st, err := c.lc.Status()
	return err == nil && st == libcontainer.Paused
}

// unifiedCgroup creates the container's directory in the cgroup v2
// hierarchy (on a hybrid host, the one runc also joins under
// /sys/fs/cgroup/unified) ahead of libcontainer, which creates the same
// path when it places the init. Destroy removes it with the others.
func unifiedCgroup(cg *cgroups.Cgroup) (string, error) {
	m, err := manager.New(cg)
	if err != nil {
		return "", fmt.Errorf("cgroup manager: %w", err)
	}
	dir := m.Path("")
	if dir == "" {
		return "", fmt.Errorf("cgroup %s: no cgroup v2 hierarchy on this host: %w", cg.Path, errdefs.ErrFailedPrecondition)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cgroup %s: %w", dir, err)
	}
	return dir, nil
}
