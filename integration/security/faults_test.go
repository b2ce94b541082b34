package security

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/typeurl/v2"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
)

// TestContainerdRestart: containerd goes away while containers run and one
// exits meanwhile. After containerd comes back it reconnects to the shims:
// the running container still runs and the exit code that happened while
// containerd was down is reported exactly.
func TestContainerdRestart(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	runner, _ := startLong(t, env)
	// It makes a denied call while containerd is down: the record must
	// still reach the sink (the shim, not containerd, writes it).
	exiter := newContainer(t, env, newID("exiter"), []string{"sh", "-c", "sleep 2; probe keyctl; exit 17"})
	task, err := exiter.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := env.RestartContainerd(rctx); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	ctx = env.Context()
	time.Sleep(3 * time.Second) // the exiter is gone by now

	c, err := env.Client.LoadContainer(ctx, exiter.ID())
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task after restart: %v", err)
	}
	sc, err := tk.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-sc:
		if st.ExitCode() != 17 {
			t.Errorf("exit code after containerd restart = %d, want 17", st.ExitCode())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit status after containerd restart")
	}
	if env.Handler == harness.HandlerStockade {
		log := denials.LogPath(env.LogDir, denial.Attribution{Namespace: harness.Namespace, Pod: exiter.ID(), PodUID: exiter.ID(), Container: exiter.ID()})
		if !waitFile(log) {
			t.Errorf("denial made while containerd was down is missing from %s", log)
		}
	}
	c, err = env.Client.LoadContainer(ctx, runner.ID())
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := rt.Status(ctx); err != nil || st.Status != client.Running {
		t.Errorf("long-running container after restart: %v %v", st, err)
	}
}

// TestShimSIGKILLLeavesNothing: the shim is killed; containerd runs the
// shim's delete, which must kill the container and remove its mounts,
// cgroup and state, and the task must report SIGKILL's exit code.
func TestShimSIGKILLLeavesNothing(t *testing.T) {
	env := harness.Get(t)
	if env.Handler != harness.HandlerStockade {
		t.Skip("tests stockade's shim delete")
	}
	ctx, cancel := context.WithTimeout(env.Context(), 60*time.Second)
	defer cancel()
	c, task := startLong(t, env)
	// The client's Wait dies with the shim (unknown status); the exit that
	// counts is the one containerd publishes after "shim delete".
	events, errs := env.Client.Subscribe(ctx, `topic=="/tasks/exit"`)
	pid := int(task.Pid())
	shim := parentOf(t, pid)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for exited := false; !exited; {
		select {
		case e := <-events:
			v, err := typeurl.UnmarshalAny(e.Event)
			if err != nil {
				continue
			}
			if ex, ok := v.(*eventstypes.TaskExit); ok && ex.ContainerID == c.ID() {
				exited = true
				if ex.ExitStatus != 137 {
					t.Errorf("exit after shim kill = %d, want 137", ex.ExitStatus)
				}
			}
		case err := <-errs:
			t.Fatalf("subscribe: %v", err)
		case <-ctx.Done():
			t.Fatal("no exit event after the shim was killed")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil && !leftovers(c.ID()) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("after shim SIGKILL: container pid alive=%v, leftovers=%v", syscall.Kill(pid, 0) == nil, leftovers(c.ID()))
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// leftovers reports whether a mount, cgroup or libcontainer state of id is left.
func leftovers(id string) bool {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), "/"+id+"/") {
		return true
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/" + harness.Namespace + "/" + id); err == nil {
		return true
	}
	if _, err := os.Stat("/run/stockade/" + harness.Namespace + "/" + id); err == nil {
		return true
	}
	return false
}
