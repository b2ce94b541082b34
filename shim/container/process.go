package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Status is a process's lifecycle state, as containerd sees it.
type Status int

// Process states.
const (
	Created Status = iota
	Running
	Stopped
	Deleted
)

func (s Status) String() string {
	return [...]string{"created", "running", "stopped", "deleted"}[s]
}

// Process is a container's init or one of its exec processes.
type Process struct {
	// ID is the exec ID, or "" for the container's init.
	ID    string
	Stdio Stdio

	c    *Container
	spec *specs.Process
	lp   *libcontainer.Process
	io   *processIO

	mu         sync.Mutex
	status     Status
	pid        int
	exitStatus int
	exitedAt   time.Time
	done       chan struct{}
}

// ExitInfo is the result of a finished process.
type ExitInfo struct {
	Pid        int
	ExitStatus int
	ExitedAt   time.Time
}

// Pid is the host pid, 0 before start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Status is the current lifecycle state.
func (p *Process) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Exit returns the exit information; ok is false while the process runs.
func (p *Process) Exit() (ExitInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ExitInfo{Pid: p.pid, ExitStatus: p.exitStatus, ExitedAt: p.exitedAt}, p.status >= Stopped
}

// Done is closed when the process has exited and its status is recorded.
func (p *Process) Done() <-chan struct{} { return p.done }

// watch waits for the process (the only wait on this pid: see doc.go) and
// records its exit, then calls onExit.
func (p *Process) watch(ctx context.Context, onExit func(*Process)) {
	awaitExit(p.Pid())
	state, err := p.lp.Wait()
	// Reaped: the pid may now be reused by anything, and is no longer the
	// orphan reaper's to leave alone.
	knownPids.remove(p.Pid())
	status := 255
	if state != nil {
		if ws, ok := state.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				status = 128 + int(ws.Signal())
			case ws.Exited():
				status = ws.ExitStatus()
			}
		}
	} else if err != nil {
		log.G(ctx).WithError(err).WithField("pid", p.Pid()).Warn("wait for process")
	}
	// An exit is recorded only once a Start in flight has returned, so a
	// process that exits at once never appears to finish before it started.
	if b := p.c.cfg.ExitBarrier; b != nil {
		b()
	}
	// The exit event goes out once the output is with containerd: a
	// client deletes the task when it sees the exit, and containerd's
	// client closes its ends of the FIFOs on Delete, dropping whatever
	// the shim had not copied yet (seen under load as a container that
	// exited 0 with its last lines, or all of its output, missing). The
	// wait is bounded: a background process holding the output open
	// delays the event by at most outputDrainTimeout.
	if p.io != nil {
		p.io.waitCopies(outputDrainTimeout)
	}
	p.mu.Lock()
	p.exitStatus = status
	p.exitedAt = time.Now()
	p.status = Stopped
	p.mu.Unlock()
	close(p.done)
	if onExit != nil {
		onExit(p)
	}
}

// outputDrainTimeout bounds how long an exit waits for the process's
// output to be copied out.
const outputDrainTimeout = time.Second

// Kill signals the process.
func (p *Process) Kill(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.status {
	case Stopped, Deleted:
		return ErrProcessExited
	}
	if p.ID == "" {
		// The container's init: libcontainer kills every process when the
		// container shares the host pid namespace.
		return translate(p.c.lc.Signal(sig))
	}
	if err := p.lp.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return ErrProcessExited
		}
		return err
	}
	return nil
}

// CloseStdin closes the process's stdin.
func (p *Process) CloseStdin() {
	if p.io != nil {
		p.io.closeStdin()
	}
}

// Resize sets the terminal size.
func (p *Process) Resize(width, height uint32) error {
	if p.io == nil {
		return fmt.Errorf("process has no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return p.io.resize(width, height)
}

// release waits briefly for output to drain and frees the stdio.
func (p *Process) release(ctx context.Context) {
	if p.io != nil {
		p.io.wait(ctx, 2*time.Second)
		p.io.Close()
	}
}

// newLibcontainerProcess converts an OCI process to libcontainer's form.
func newLibcontainerProcess(sp *specs.Process) (*libcontainer.Process, error) {
	if sp == nil {
		return nil, fmt.Errorf("process: missing: %w", errdefs.ErrInvalidArgument)
	}
	if len(sp.Args) == 0 {
		return nil, fmt.Errorf("process.args: empty: %w", errdefs.ErrInvalidArgument)
	}
	if sp.Cwd == "" || !strings.HasPrefix(sp.Cwd, "/") {
		return nil, fmt.Errorf("process.cwd: %q is not an absolute path: %w", sp.Cwd, errdefs.ErrInvalidArgument)
	}
	nnp := sp.NoNewPrivileges
	lp := &libcontainer.Process{
		Args:            sp.Args,
		Env:             sp.Env,
		UID:             int(sp.User.UID),
		GID:             int(sp.User.GID),
		Cwd:             sp.Cwd,
		Label:           sp.SelinuxLabel,
		NoNewPrivileges: &nnp,
		AppArmorProfile: sp.ApparmorProfile,
		Scheduler:       sp.Scheduler,
		IOPriority:      sp.IOPriority,
	}
	if sp.ConsoleSize != nil {
		lp.ConsoleWidth = uint16(sp.ConsoleSize.Width)
		lp.ConsoleHeight = uint16(sp.ConsoleSize.Height)
	}
	if c := sp.Capabilities; c != nil {
		lp.Capabilities = &configs.Capabilities{
			Bounding: c.Bounding, Effective: c.Effective, Inheritable: c.Inheritable,
			Permitted: c.Permitted, Ambient: c.Ambient,
		}
	}
	for _, g := range sp.User.AdditionalGids {
		lp.AdditionalGroups = append(lp.AdditionalGroups, int(g))
	}
	for i, rl := range sp.Rlimits {
		res, ok := rlimits[rl.Type]
		if !ok {
			return nil, fmt.Errorf("process.rlimits[%d].type: unknown rlimit %q: %w", i, rl.Type, errdefs.ErrInvalidArgument)
		}
		lp.Rlimits = append(lp.Rlimits, configs.Rlimit{Type: res, Hard: rl.Hard, Soft: rl.Soft})
	}
	return lp, nil
}

var rlimits = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK,
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
}

// startError classifies an error from starting a process: a binary that
// cannot be found is the caller's mistake, not the runtime's.
func startError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "executable file not found"), strings.Contains(msg, "no such file or directory"):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return err
}

// awaitExit returns once the child pid has exited (a zombie, not yet
// reaped), or at once if that cannot be watched (no pidfd support, not a
// child). It waits in the netpoller on a pidfd, which turns readable at the
// exit; libcontainer's Wait that follows then returns at once. Go's own wait
// is a blocking waitid(2), which keeps the goroutine's P for up to 20 ms
// after it starts (see oom.go): right after Create or an exec's Start, when
// containerd's next request is about to arrive.
func awaitExit(pid int) {
	if pid <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Read(func(fd uintptr) bool {
		// WNOWAIT: only look; the reaping stays libcontainer's. Linux
		// zeroes info when nothing is waitable.
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		return err != nil || info.Signo != 0
	})
}
