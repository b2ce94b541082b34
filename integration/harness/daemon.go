package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/stockade-dev/stockade/config"
)

// Options configure Start.
type Options struct {
	// Handler is the runtime under test, HandlerStockade or HandlerRunc;
	// empty means HandlerFromEnv. Both handlers are always configured in
	// CRI; this one is the default and the one Env.Runtime names.
	Handler string
	// BinDir holds containerd, the shims, runc and images/; empty means
	// FindBinDir.
	BinDir string
	// Images are the OCI layout tarballs to import; empty means every
	// BinDir/images/*.tar.
	Images []string
	// Logf reports progress; nil discards it.
	Logf func(format string, args ...any)
}

// startTimeout bounds how long containerd may take to serve its socket.
const startTimeout = 30 * time.Second

// daemon is the containerd process and the host resources tied to it.
type daemon struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	waitErr error
	layout  *layout
	logf    func(string, ...any)
	// stopping is set once teardown has asked containerd to exit, so that
	// only an unexpected exit is reported.
	stopping atomic.Bool
}

// Start runs a private containerd in a new temporary directory, imports the
// images into Namespace and CRINamespace, and waits until CRI serves them.
// On error everything it created is torn down again and the error carries
// the tail of containerd's log.
func Start(ctx context.Context, o Options) (_ *Env, retErr error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Handler == "" {
		h, err := HandlerFromEnv()
		if err != nil {
			return nil, err
		}
		o.Handler = h
	}
	rt, err := runtimeFor(o.Handler)
	if err != nil {
		return nil, err
	}
	if o.BinDir == "" {
		if o.BinDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if o.BinDir, err = filepath.Abs(o.BinDir); err != nil {
		return nil, err
	}
	if len(o.Images) == 0 {
		o.Images, _ = filepath.Glob(filepath.Join(o.BinDir, "images", "*.tar"))
	}

	dir, err := os.MkdirTemp("", "stockade-it-")
	if err != nil {
		return nil, fmt.Errorf("create harness dir: %w", err)
	}
	// Like /run/containerd on a node: traversable, so that a container's
	// remapped root (an unprivileged host uid) can reach its bundle.
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("harness dir: %w", err)
	}
	l, err := newLayout(dir, o.BinDir, o.Handler)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &Env{
		Address:    l.Address,
		Dir:        dir,
		BinDir:     o.BinDir,
		Runtime:    rt,
		Handler:    o.Handler,
		NodeConfig: l.NodeConfig,
		LogDir:     l.LogDir,
		daemon:     &daemon{layout: l, logf: o.Logf},
		owner:      true,
	}
	defer func() {
		if retErr != nil {
			tail := e.LogTail(40)
			_ = e.Close()
			retErr = fmt.Errorf("%w\n--- tail of containerd.log ---\n%s", retErr, tail)
		}
	}()

	if err := l.write(); err != nil {
		return nil, fmt.Errorf("write configs in %s: %w", dir, err)
	}
	if err := e.daemon.start(); err != nil {
		return nil, err
	}
	o.Logf("containerd pid %d serving %s", e.daemon.cmd.Process.Pid, e.Address)

	if e.Client, err = e.daemon.connect(ctx); err != nil {
		return nil, err
	}
	for _, ns := range []string{Namespace, CRINamespace} {
		if err := importImages(ctx, e.Client, ns, o.Images); err != nil {
			return nil, err
		}
	}
	o.Logf("imported %d images into %s and %s", len(o.Images), Namespace, CRINamespace)
	if err := e.waitCRI(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

func (d *daemon) start() error {
	logFile, err := os.OpenFile(d.layout.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(filepath.Join(d.layout.BinDir, "containerd"), "--config", d.layout.Config)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = d.layout.Dir
	// bin/ comes first so containerd resolves containerd-shim-stockade-v1
	// and containerd-shim-runc-v2 from this repository, not from the host.
	// The stockade handler is registered as contrib/ ships it, without a
	// runtime options block (containerd 2.3's client fails user-namespaced
	// pods on one); the node config reaches the shim through containerd's
	// environment, as a systemd drop-in would set it on a node.
	cmd.Env = append(os.Environ(), "PATH="+d.layout.BinDir+":"+os.Getenv("PATH"),
		config.PathEnv+"="+d.layout.NodeConfig)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a terminal's Ctrl-C reaches the test
		// binary, which tears down in order, not containerd directly.
		Setpgid: true,
		// If the test binary dies without teardown, containerd goes too.
		Pdeathsig: syscall.SIGKILL,
	}
	// The kernel sends Pdeathsig when the *thread* that forked exits, and
	// Go retires a thread whose locked goroutine returns. So containerd is
	// forked from a goroutine locked to its thread that lives until
	// containerd has exited: the signal can only come from the death of
	// the whole test process.
	d.exited = make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.waitErr = cmd.Wait()
		// Read before close: once exited is closed, a restart resets
		// stopping for the next daemon.
		unexpected := !d.stopping.Load()
		close(d.exited)
		if unexpected {
			d.logf("containerd exited unexpectedly: %v", d.waitErr)
		}
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	d.cmd = cmd
	return nil
}

// Err returns nil while containerd runs, and why it exited otherwise, with
// the tail of its log: a test or benchmark that sees connection errors can
// tell a crashed daemon from a failing shim.
func (e *Env) Err() error {
	if e.daemon == nil || e.daemon.exited == nil {
		return nil
	}
	select {
	case <-e.daemon.exited:
		return fmt.Errorf("containerd exited: %v\n--- tail of containerd.log ---\n%s", e.daemon.waitErr, e.LogTail(30))
	default:
		return nil
	}
}

// connect waits until containerd serves its socket and returns a client.
func (d *daemon) connect(ctx context.Context) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(d.layout.Address); err == nil {
			c, err := client.New(d.layout.Address, client.WithDefaultNamespace(Namespace))
			if err == nil {
				if ok, err := c.IsServing(ctx); err == nil && ok {
					return c, nil
				}
				c.Close()
			}
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("containerd exited before serving: %v", d.waitErr)
		case <-ctx.Done():
			return nil, fmt.Errorf("containerd not serving %s after %v: %w", d.layout.Address, startTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and, if containerd has not exited in time, SIGKILL.
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	d.stopping.Store(true)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	return errors.New("containerd ignored SIGTERM for 15s and was killed")
}

// LogTail returns the last n lines of containerd's log.
func (e *Env) LogTail(n int) string {
	if e.daemon == nil {
		return ""
	}
	data, err := os.ReadFile(e.daemon.layout.Log)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", e.daemon.layout.Log, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// LogPath is the path of containerd's log (stdout and stderr).
func (e *Env) LogPath() string { return e.daemon.layout.Log }

// PodLogDir is where NewPodConfig puts pod log directories.
func (e *Env) PodLogDir() string { return e.daemon.layout.PodLogDir }

// PodSubnet is the CIDR the test bridge hands pod addresses from.
func (e *Env) PodSubnet() string { return e.daemon.layout.Subnet }

// ContainerdPID is the pid of the private containerd.
func (e *Env) ContainerdPID() int { return e.daemon.cmd.Process.Pid }

// ShimPIDs returns the pids of the shims this containerd started (they carry
// its socket in their -address argument), keyed by pid with their argv[0].
func (e *Env) ShimPIDs() (map[int]string, error) {
	procs, err := scanProcs()
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, p := range procs {
		if p.hasAddress(e.Address) && strings.Contains(filepath.Base(p.argv0()), "containerd-shim") {
			out[p.pid] = p.argv0()
		}
	}
	return out, nil
}
