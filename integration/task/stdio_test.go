package task

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

// containerd's own cio (and CRI) name a stderr FIFO even for a terminal; the
// shim must accept it, leave it unused, and deliver the terminal's output
// whole, however large.
func TestTerminalExecWithStderrFIFO(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	task, pspec := ttyProcess(t, env, "sh", "-c", "seq 1 20000; tty")
	var out, errb safeBuffer
	// A non-nil stderr makes cio name a stderr FIFO, as CRI always does.
	p, err := task.Exec(ctx, "tty-exec", pspec, cio.NewCreator(cio.WithStreams(nil, &out, &errb), cio.WithTerminal, cio.WithFIFODir(env.FIFODir())))
	if err != nil {
		t.Fatalf("exec with a terminal and a stderr FIFO: %v", err)
	}
	statusC, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("start exec with a terminal and a stderr FIFO: %v", err)
	}
	st := <-statusC
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.ReplaceAll(out.String(), "\r\n", "\n"), "\n")
	if st.ExitCode() != 0 || len(lines) < 20001 || lines[19999] != "20000" || !strings.HasPrefix(lines[20000], "/dev/pts/") {
		t.Errorf("exit=%d, %d lines of output (want 20000 numbers and a pty); tail %q", st.ExitCode(), len(lines), tail(out.String(), 80))
	}
	if errb.String() != "" {
		t.Errorf("stderr of a terminal process = %q, want nothing", errb.String())
	}
}

// A client that detaches (closes its end of the stdin FIFO) must not end the
// process's stdin; only CloseIO does, and what the FIFO still holds then is
// delivered first.
func TestStdinSurvivesDetachAndDrainsOnCloseIO(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	c := newContainer(t, env, newID(t), []string{"sh", "-c", "cat; echo cat-ended"})
	defer cleanupContainer(env, c)
	pr, pw := io.Pipe()
	var out safeBuffer
	task, err := c.NewTask(ctx, env.NewIO(pr, &out, &out))
	if err != nil {
		t.Fatal(err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first line", func() bool { return strings.Contains(out.String(), "first") })
	// Detach: the client's copy reaches EOF and closes its FIFO end.
	pw.Close()
	time.Sleep(500 * time.Millisecond)
	if s, err := task.Status(ctx); err != nil || s.Status != client.Running || strings.Contains(out.String(), "cat-ended") {
		t.Fatalf("after the client detached: status %v (%v), output %q; want cat still reading", s.Status, err, out.String())
	}

	// Data still in flight when CloseIO arrives is delivered before EOF.
	fifos := task.IO().Config()
	w, err := os.OpenFile(fifos.Stdin, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("reopen stdin fifo: %v", err)
	}
	if _, err := w.WriteString("second\nthird\n"); err != nil {
		t.Fatal(err)
	}
	if err := task.CloseIO(ctx, client.WithStdinCloser); err != nil {
		t.Fatalf("close io: %v", err)
	}
	w.Close()
	select {
	case st := <-statusC:
		if st.ExitCode() != 0 {
			t.Errorf("exit %d", st.ExitCode())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("cat did not see EOF after CloseIO; output %q", out.String())
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "first\nsecond\nthird\ncat-ended\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// A binary:// logger that never signals readiness fails the task and is not
// left running. Stockade only: the runc shim waits for such a logger for
// ever, holding the task's Create (a documented difference).
func TestLoggerThatNeverSignalsReady(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	ctx := env.Context()
	dir := t.TempDir()
	logger := filepath.Join(dir, "never-ready-logger")
	// Keeps fd 5 (the readiness pipe) open for ever.
	if err := os.WriteFile(logger, []byte("#!/bin/sh\nwhile :; do sleep 1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newContainer(t, env, newID(t), []string{"true"})
	defer cleanupContainer(env, c)
	task, err := c.NewTask(ctx, cio.BinaryIO(logger, nil))
	if err == nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
		t.Fatal("task created although its logger never signalled readiness")
	}
	waitFor(t, "the logger to be gone", func() bool { return len(processesRunning(logger)) == 0 })
}

// ttyProcess starts a long-running container and returns its task and a
// process spec for an exec of args on a terminal in it.
func ttyProcess(t *testing.T, env *harness.Env, args ...string) (client.Task, *specs.Process) {
	t.Helper()
	_, task := startLong(t, env)
	spec, err := task.Spec(env.Context())
	if err != nil {
		t.Fatal(err)
	}
	p := *spec.Process
	p.Terminal = true
	p.Args = args
	return task, &p
}

// processesRunning lists the pids whose command line mentions path.
func processesRunning(path string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), path) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFor polls cond for up to a minute: generous, since a loaded CI machine
// is slow, and the condition is what the test is about, not the time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// lateStdinIO is a cio.IO whose stdin FIFO the client opens only after the
// process has started, as CRI does for `kubectl exec -it` (the stream
// attaches after the exec started): the shim must still be reading it.
type lateStdinIO struct {
	cfg  cio.Config
	out  *os.File
	done chan struct{}
}

func newLateStdinIO(t *testing.T, dir, id string, out io.Writer) *lateStdinIO {
	t.Helper()
	d, err := os.MkdirTemp(dir, "late-")
	if err != nil {
		t.Fatal(err)
	}
	l := &lateStdinIO{cfg: cio.Config{
		Stdin: filepath.Join(d, id+"-stdin"), Stdout: filepath.Join(d, id+"-stdout"),
		Stderr: filepath.Join(d, id+"-stderr"), Terminal: true,
	}, done: make(chan struct{})}
	for _, p := range []string{l.cfg.Stdin, l.cfg.Stdout, l.cfg.Stderr} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// O_RDWR: opening does not wait for the shim's writer.
	if l.out, err = os.OpenFile(l.cfg.Stdout, os.O_RDWR, 0); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(out, l.out); close(l.done) }()
	return l
}

func (l *lateStdinIO) Config() cio.Config { return l.cfg }
func (l *lateStdinIO) Cancel()            {}
func (l *lateStdinIO) Wait()              {}
func (l *lateStdinIO) Close() error       { return l.out.Close() }

func TestTerminalExecStdinOpenedAfterStart(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	task, pspec := ttyProcess(t, env, "sh", "-c", "read line; echo got:$line; exit 3")
	var out safeBuffer
	lio := newLateStdinIO(t, env.FIFODir(), "late", &out)
	p, err := task.Exec(ctx, "late-stdin", pspec, func(string) (cio.IO, error) { return lio, nil })
	if err != nil {
		t.Fatal(err)
	}
	statusC, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Only now does the client open stdin and type.
	w, err := os.OpenFile(lio.cfg.Stdin, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open stdin: %v", err)
	}
	defer w.Close()
	if _, err := w.WriteString("typed\r"); err != nil {
		t.Fatalf("type into the terminal: %v", err)
	}
	select {
	case st := <-statusC:
		if st.ExitCode() != 3 || !strings.Contains(out.String(), "got:typed") {
			t.Errorf("exit %d, output %q; want 3 and got:typed", st.ExitCode(), out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("typed input never reached the terminal; output %q", out.String())
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}
