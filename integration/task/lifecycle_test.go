package task

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

func TestRunToExitCode(t *testing.T) {
	env := harness.Get(t)
	id := newID(t)
	c := newContainer(t, env, id, []string{"sh", "-c", "echo hello from $(cat /proc/1/comm); exit 42"})
	code, out := run(t, env, c)
	if code != 42 {
		t.Errorf("exit code = %d, want 42", code)
	}
	if !strings.Contains(out, "hello from sh") {
		t.Errorf("stdout = %q, want it to contain %q", out, "hello from sh")
	}
	cleanupContainer(env, c)
	env.AssertNoLeaks(t, id)
}

func TestStderrAndStdin(t *testing.T) {
	env := harness.Get(t)
	c := newContainer(t, env, newID(t), []string{"sh", "-c", "read line; echo got:$line; echo oops >&2"})
	var out, errb safeBuffer
	ctx := env.Context()
	task, err := c.NewTask(ctx, env.NewIO(strings.NewReader("ping\n"), &out, &errb))
	if err != nil {
		t.Fatal(err)
	}
	statusC, _ := task.Wait(ctx)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st := <-statusC
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 0 || !strings.Contains(out.String(), "got:ping") || !strings.Contains(errb.String(), "oops") {
		t.Errorf("exit=%d stdout=%q stderr=%q", st.ExitCode(), out.String(), errb.String())
	}
}

func TestExecInLongRunningContainer(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	_, task := startLong(t, env)
	spec, err := task.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pspec := *spec.Process
	pspec.Args = []string{"sh", "-c", "echo exec says hi; exit 5"}
	var out safeBuffer
	p, err := task.Exec(ctx, "exec-1", &pspec, env.NewIO(nil, &out, &out))
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	statusC, _ := p.Wait(ctx)
	if err := p.Start(ctx); err != nil {
		t.Fatalf("exec start: %v", err)
	}
	st := <-statusC
	if _, err := p.Delete(ctx); err != nil {
		t.Fatalf("exec delete: %v", err)
	}
	if st.ExitCode() != 5 || !strings.Contains(out.String(), "exec says hi") {
		t.Errorf("exec exit=%d out=%q, want 5 and the greeting", st.ExitCode(), out.String())
	}
	pids, err := task.Pids(ctx)
	if err != nil || len(pids) == 0 || pids[0].Pid != task.Pid() {
		t.Errorf("pids = %v, %v; want the init pid %d first", pids, err, task.Pid())
	}
}

func TestTerminalWithResize(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	// The shell waits for the resize before it asks the terminal its size.
	c := newContainer(t, env, newID(t), []string{"sh", "-c", "sleep 1; stty size; tty"}, oci.WithTTY)
	var out safeBuffer
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, nil), cio.WithTerminal, cio.WithFIFODir(env.FIFODir())))
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	statusC, _ := task.Wait(ctx)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := task.Resize(ctx, 123, 45); err != nil {
		t.Fatalf("resize: %v", err)
	}
	st := <-statusC
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if st.ExitCode() != 0 || !strings.Contains(out.String(), "45 123") || !strings.Contains(out.String(), "/dev/pts/") {
		t.Errorf("exit=%d out=%q; want rows 45 cols 123 on a pty", st.ExitCode(), out.String())
	}
}

func TestKill(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	_, task := startLong(t, env)
	statusC, _ := task.Wait(ctx)
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := <-statusC
	if st.ExitCode() != 137 {
		t.Errorf("exit code = %d, want 137", st.ExitCode())
	}
}

func TestKillAll(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	// A shell that traps TERM as pid 1 only dies when every process gets it.
	_, task := startLong(t, env, oci.WithProcessArgs("sh", "-c", "trap 'exit 9' TERM; sleep 3600 & wait"))
	time.Sleep(300 * time.Millisecond)
	statusC, _ := task.Wait(ctx)
	if err := task.Kill(ctx, syscall.SIGTERM, client.WithKillAll); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-statusC:
		if st.ExitCode() != 9 {
			t.Errorf("exit code = %d, want 9 (the trap ran)", st.ExitCode())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("kill --all did not stop the container")
	}
}

func TestPauseResume(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	_, task := startLong(t, env)
	if err := task.Pause(ctx); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if st, _ := task.Status(ctx); st.Status != client.Paused {
		t.Errorf("status after pause = %s", st.Status)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if st, _ := task.Status(ctx); st.Status != client.Running {
		t.Errorf("status after resume = %s", st.Status)
	}
}

// memoryOf returns usage and limit from containerd's metrics of either cgroup version.
func memoryOf(t testing.TB, ctx context.Context, task client.Task) (usage, limit uint64) {
	t.Helper()
	m, err := task.Metrics(ctx)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		t.Fatalf("metrics data: %v", err)
	}
	switch s := v.(type) {
	case *v1.Metrics:
		return s.Memory.Usage.Usage, s.Memory.Usage.Limit
	case *v2.Metrics:
		return s.Memory.Usage, s.Memory.UsageLimit
	}
	t.Fatalf("metrics type %T", v)
	return 0, 0
}

func TestStatsAndUpdate(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	_, task := startLong(t, env)
	usage, _ := memoryOf(t, ctx, task)
	if usage == 0 {
		t.Error("memory usage is 0")
	}
	limit := int64(64 << 20)
	if err := task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})); err != nil {
		t.Fatalf("update: %v", err)
	}
	if _, got := memoryOf(t, ctx, task); got != uint64(limit) {
		t.Errorf("memory limit after update = %d, want %d", got, limit)
	}
}

func TestOOMEvent(t *testing.T) {
	env := harness.Get(t)
	ctx, cancel := context.WithTimeout(env.Context(), 60*time.Second)
	defer cancel()
	id := newID(t)
	// Doubling a shell string exhausts 16 MiB in a fraction of a second.
	c := newContainer(t, env, id, []string{"sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"},
		oci.WithMemoryLimit(16<<20))
	events, errs := env.Client.Subscribe(ctx, `topic=="/tasks/oom"`)
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	statusC, _ := task.Wait(ctx)
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-events:
			v, err := typeurl.UnmarshalAny(e.Event)
			if err != nil {
				t.Fatal(err)
			}
			if oom, ok := v.(*eventstypes.TaskOOM); ok && oom.ContainerID == id {
				st := <-statusC
				if st.ExitCode() != 137 {
					t.Errorf("exit code after OOM = %d, want 137", st.ExitCode())
				}
				return
			}
		case err := <-errs:
			t.Fatalf("subscribe: %v", err)
		case <-ctx.Done():
			t.Fatal("no /tasks/oom event within 60s")
		}
	}
}

func TestEventsInOrder(t *testing.T) {
	env := harness.Get(t)
	ctx, cancel := context.WithTimeout(env.Context(), 60*time.Second)
	defer cancel()
	id := newID(t)
	events, errs := env.Client.Subscribe(ctx, `topic~="/tasks/"`)
	c := newContainer(t, env, id, []string{"sleep", "3600"})
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	spec, _ := task.Spec(ctx)
	pspec := *spec.Process
	pspec.Args = []string{"true"}
	p, err := task.Exec(ctx, "e1", &pspec, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := p.Wait(ctx)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-pc
	_, _ = p.Delete(ctx)
	if err := task.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	sc, _ := task.Wait(ctx)
	_ = task.Kill(ctx, syscall.SIGKILL)
	<-sc
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	// containerd itself does not forward the shim's /tasks/delete for a
	// task it deletes (runc's shim shows the same), so the list ends at exit.
	want := []string{"/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started", "/tasks/exit",
		"/tasks/paused", "/tasks/resumed", "/tasks/exit"}
	var got []string
	for len(got) < len(want) {
		select {
		case e := <-events:
			v, err := typeurl.UnmarshalAny(e.Event)
			if err != nil {
				continue
			}
			if cid, ok := v.(interface{ GetContainerID() string }); ok && cid.GetContainerID() == id {
				got = append(got, e.Topic)
			}
		case err := <-errs:
			t.Fatalf("subscribe: %v", err)
		case <-ctx.Done():
			t.Fatalf("events = %v, want %v", got, want)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events = %v, want %v", got, want)
	}
}
