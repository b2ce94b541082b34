package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/errdefs"
	"github.com/containerd/fifo"
	"github.com/containerd/log"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// Stdio is what containerd asks for a process: FIFO paths or log URIs
// (binary://, file://), and whether the process gets a terminal.
type Stdio struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// processIO connects a process's stdio to what containerd asked for. The
// process always gets pipes (or a pty) owned by the container's root, never
// a host path, and the shim copies between them and containerd's FIFOs.
type processIO struct {
	stdio Stdio

	// child ends handed to the process; closed in the shim after start.
	childFiles []*os.File
	// consoleSock receives the pty master from the container's init.
	consoleSock *os.File

	mu     sync.Mutex
	stdinW io.WriteCloser // where stdin is copied to; nil once closed
	// stdinHold is the shim's own write end of containerd's stdin FIFO: while
	// it is open, a client detaching does not end the process's stdin.
	stdinHold io.Closer
	console   console.Console

	copies  sync.WaitGroup
	closers []io.Closer
	logger  *exec.Cmd // the binary:// logging process, if any
}

// newProcessIO prepares lp's stdio before it starts. rootUID/rootGID own the
// pipes so that a process in a user namespace may reopen /proc/self/fd/N.
func newProcessIO(ctx context.Context, id, ns string, stdio Stdio, lp *libcontainer.Process, rootUID, rootGID int) (_ *processIO, retErr error) {
	pio := &processIO{stdio: stdio}
	defer func() {
		if retErr != nil {
			pio.Close()
		}
	}()
	if stdio.Terminal {
		// A terminal has no separate stderr: containerd's CRI still names a
		// stderr FIFO for tty execs and containers, and, like the runc shim,
		// the shim leaves it unopened (its reader sees EOF).
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("console socket pair: %w", err)
		}
		pio.consoleSock = os.NewFile(uintptr(fds[0]), "console-parent")
		child := os.NewFile(uintptr(fds[1]), "console-child")
		pio.childFiles = append(pio.childFiles, child)
		lp.ConsoleSocket = child
		return pio, nil
	}

	pipes, err := lp.InitializeIO(rootUID, rootGID)
	if err != nil {
		return nil, fmt.Errorf("stdio pipes: %w", err)
	}
	for _, f := range []any{lp.Stdin, lp.Stdout, lp.Stderr} {
		pio.childFiles = append(pio.childFiles, f.(*os.File))
	}
	pio.closers = append(pio.closers, pipes.Stdout, pipes.Stderr)

	pio.stdinW = pipes.Stdin
	if stdio.Stdin == "" {
		pio.closeStdin()
	} else if err := pio.copyStdin(ctx, pipes.Stdin); err != nil {
		return nil, err
	}

	if err := pio.routeOutput(ctx, id, ns, pipes.Stdout, pipes.Stderr); err != nil {
		return nil, err
	}
	return pio, nil
}

// routeOutput sends the process's stdout/stderr pipes where containerd asked.
func (p *processIO) routeOutput(ctx context.Context, id, ns string, stdout, stderr io.ReadCloser) error {
	outURI, err := parseURI(p.stdio.Stdout)
	if err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	errURI, err := parseURI(p.stdio.Stderr)
	if err != nil {
		return fmt.Errorf("stderr: %w", err)
	}
	if isBinaryLogger(outURI) || isBinaryLogger(errURI) {
		if p.stdio.Stdout != p.stdio.Stderr {
			return fmt.Errorf("stdout %q and stderr %q: a binary:// logger must receive both: %w", p.stdio.Stdout, p.stdio.Stderr, errdefs.ErrInvalidArgument)
		}
		return p.startLogger(ctx, id, ns, outURI, stdout.(*os.File), stderr.(*os.File))
	}
	for _, s := range []struct {
		u   *url.URL
		src io.Reader
	}{{outURI, stdout}, {errURI, stderr}} {
		dst, err := p.openSink(ctx, s.u)
		if err != nil {
			return err
		}
		p.copies.Add(1)
		go func(dst io.WriteCloser, src io.Reader) {
			defer p.copies.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
		}(dst, s.src)
	}
	return nil
}

// openSink opens a FIFO or a file:// target. An empty target discards.
func (p *processIO) openSink(ctx context.Context, u *url.URL) (io.WriteCloser, error) {
	switch u.Scheme {
	case "":
		if u.Path == "" {
			return nopWriteCloser{io.Discard}, nil
		}
		// O_WRONLY on a FIFO would block until containerd's reader opens
		// it; the fifo package opens it in the background instead.
		w, err := fifo.OpenFifo(ctx, u.Path, syscall.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open fifo %s: %w", u.Path, err)
		}
		p.closers = append(p.closers, w)
		return w, nil
	case "fifo":
		return p.openSink(ctx, &url.URL{Path: u.Path})
	case "file":
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, fmt.Errorf("file log %s: %w", u.Path, err)
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("file log %s: %w", u.Path, err)
		}
		return &syncedFile{f: f}, nil
	}
	return nil, fmt.Errorf("log uri %q: unsupported scheme %q: %w", u.String(), u.Scheme, errdefs.ErrInvalidArgument)
}

func isBinaryLogger(u *url.URL) bool { return u.Scheme == "binary" || u.Scheme == "binary-v2" }

// loggerReadyTimeout bounds how long a binary:// logger may take to signal
// that it is ready; a variable so tests can shorten it.
var loggerReadyTimeout = 10 * time.Second

// startLogger runs a binary:// logging driver the way containerd's shims do:
// stdout on fd 3, stderr on fd 4, and fd 5 closed by the logger when ready.
func (p *processIO) startLogger(ctx context.Context, id, ns string, u *url.URL, stdout, stderr *os.File) error {
	var args []string
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 && vs[0] != "" {
			args = append(args, vs[0])
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(u.Path, args...)
	cmd.Env = append(os.Environ(), "CONTAINER_ID="+id, "CONTAINER_NAMESPACE="+ns)
	cmd.ExtraFiles = []*os.File{stdout, stderr, w}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	w.Close()
	p.logger = cmd
	// The logger holds its own copies of the read ends now.
	stdout.Close()
	stderr.Close()
	// binary:// loggers signal readiness by closing fd 5 (EOF), binary-v2://
	// ones by writing a byte first, so a logger that crashed at start is
	// told apart from a ready one.
	ready := make(chan int, 1)
	go func() {
		b := make([]byte, 1)
		n, _ := r.Read(b)
		ready <- n
	}()
	select {
	case n := <-ready:
		if u.Scheme == "binary-v2" && n == 0 {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			p.logger = nil
			return fmt.Errorf("logging binary %s exited or closed fd 5 without signalling readiness: %w", u.Path, errdefs.ErrUnavailable)
		}
	case <-time.After(loggerReadyTimeout):
		// Not left running: nothing else would ever reap it (the shim
		// runs without a global reaper).
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		p.logger = nil
		return fmt.Errorf("logging binary %s did not signal readiness within %s: %w", u.Path, loggerReadyTimeout, errdefs.ErrUnavailable)
	}
	return nil
}

// afterStart closes the process's ends in the shim and, for a terminal,
// receives the pty master from the container and starts copying.
func (p *processIO) afterStart(ctx context.Context) error {
	for _, f := range p.childFiles {
		f.Close()
	}
	p.childFiles = nil
	if !p.stdio.Terminal {
		return nil
	}
	master, err := recvFile(p.consoleSock)
	p.consoleSock.Close()
	p.consoleSock = nil
	if err != nil {
		return fmt.Errorf("receive pty master: %w", err)
	}
	con, err := console.ConsoleFromFile(master)
	if err != nil {
		master.Close()
		return fmt.Errorf("pty master: %w", err)
	}
	p.mu.Lock()
	p.console = con
	p.mu.Unlock()
	p.closers = append(p.closers, con)
	if p.stdio.Stdin != "" {
		p.mu.Lock()
		p.stdinW = nopWriteCloser{con}
		p.mu.Unlock()
		if err := p.copyStdin(ctx, con); err != nil {
			return err
		}
	}
	u, err := parseURI(p.stdio.Stdout)
	if err != nil {
		return fmt.Errorf("stdout: %w", err)
	}
	dst, err := p.openSink(ctx, u)
	if err != nil {
		return err
	}
	p.copies.Add(1)
	go func() {
		defer p.copies.Done()
		// Reading the master fails with EIO once the last slave fd closes:
		// that is the normal end of a terminal session.
		_, _ = io.Copy(dst, con)
		dst.Close()
	}()
	return nil
}

// copyStdin copies containerd's stdin FIFO into dst. The FIFO is opened
// non-blocking (the client may attach late), and the shim holds a write end
// of its own, as the runc shim does: a client that detaches does not end the
// process's stdin, and CloseIO (closeStdin) only drops that hold, so the copy
// still drains what the FIFO buffers before the process sees EOF.
func (p *processIO) copyStdin(ctx context.Context, dst io.Writer) error {
	// The FIFOs open in the background (each end waits for the other), and
	// the fifo package closes one whose open has not finished when its
	// context ends. The request's context ends when the shim answers it,
	// which for a terminal (set up after Start) is at once: the stdin of a
	// `kubectl exec -it` would be closed before it ever opened.
	ctx = context.WithoutCancel(ctx)
	in, err := fifo.OpenFifo(ctx, p.stdio.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open stdin %s: %w", p.stdio.Stdin, err)
	}
	hold, err := fifo.OpenFifo(ctx, p.stdio.Stdin, syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		in.Close()
		return fmt.Errorf("open stdin %s for writing: %w", p.stdio.Stdin, err)
	}
	p.mu.Lock()
	p.stdinHold = hold
	p.mu.Unlock()
	p.closers = append(p.closers, in)
	go func() {
		_, _ = io.Copy(dst, in)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.stdinW != nil {
			p.stdinW.Close()
			p.stdinW = nil
		}
	}()
	return nil
}

// closeStdin ends the process's stdin (CloseIO): once what containerd's FIFO
// still holds has been copied, or at once when there is no FIFO.
func (p *processIO) closeStdin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stdinHold != nil {
		p.stdinHold.Close()
		p.stdinHold = nil
		return
	}
	if p.stdinW != nil {
		p.stdinW.Close()
		p.stdinW = nil
	}
}

// resize sets the terminal size.
func (p *processIO) resize(width, height uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.console == nil {
		return fmt.Errorf("process has no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return p.console.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)})
}

// wait waits for output copying to finish, at most timeout: a daemon that
// escaped the pid namespace could hold a pipe open for ever.
func (p *processIO) wait(ctx context.Context, timeout time.Duration) {
	if !p.waitCopies(timeout) {
		log.G(ctx).Warn("stdio copy did not finish; closing")
	}
	if p.logger != nil {
		_ = p.logger.Wait()
		p.logger = nil
	}
}

// waitCopies waits at most timeout for the output copies to reach their
// end (every writer of the process's pipes or terminal gone, all of it
// handed to containerd's FIFOs or files), and reports whether they did.
func (p *processIO) waitCopies(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { p.copies.Wait(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Close releases every file the IO holds.
func (p *processIO) Close() {
	for _, f := range p.childFiles {
		f.Close()
	}
	p.childFiles = nil
	if p.consoleSock != nil {
		p.consoleSock.Close()
	}
	p.mu.Lock()
	for _, c := range []io.Closer{p.stdinHold, p.stdinW} {
		if c != nil {
			c.Close()
		}
	}
	p.stdinHold, p.stdinW = nil, nil
	p.mu.Unlock()
	for _, c := range p.closers {
		c.Close()
	}
	p.closers = nil
}

func parseURI(s string) (*url.URL, error) {
	if s == "" {
		return &url.URL{}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid log uri %q: %w: %w", s, err, errdefs.ErrInvalidArgument)
	}
	if u.Scheme == "" {
		u.Path = s
	}
	return u, nil
}

// recvFile receives one file descriptor sent with SCM_RIGHTS.
func recvFile(sock *os.File) (*os.File, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds[1:] {
			_ = unix.Close(fd)
		}
		return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
	}
	return nil, errors.New("no file descriptor received")
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// syncedFile serialises writes from stdout and stderr into one file.
type syncedFile struct {
	mu sync.Mutex
	f  *os.File
}

func (s *syncedFile) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Write(b)
}

func (s *syncedFile) Close() error { return s.f.Close() }
