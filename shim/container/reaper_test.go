package container

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stockade-dev/stockade/internal/roottest"
	"golang.org/x/sys/unix"
)

// The orphan reaper reaps a zombie child that died in another cgroup (a
// container's orphan) and leaves alone a known container process and a child
// of the shim's own cgroup, whose waiters need their exit status.
func TestReapOrphansOnlyReapsUnknownOrphans(t *testing.T) {
	roottest.Require(t, "moves a process into a new cgroup")
	own, err := unifiedCgroupOf(os.Getpid())
	if err != nil || own == "" {
		t.Skipf("no cgroup v2 hierarchy: %v", err)
	}
	root := "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "unified", "cgroup.procs")); err == nil {
		root = filepath.Join(root, "unified")
	}
	cg := filepath.Join(root, own, "stockade-reaper-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Skipf("cannot create a cgroup: %v", err)
	}
	t.Cleanup(func() { _ = os.Remove(cg) })
	// Orphans come to the test process as they come to the shim.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })

	// orphan forks a process that lives on after its parent, in cg or not,
	// and returns its pid once it is a zombie child of the test.
	orphan := func(inCgroup bool) int {
		t.Helper()
		script := `sleep 1000 >/dev/null 2>&1 & echo $!`
		if inCgroup {
			script = `echo $$ > ` + filepath.Join(cg, "cgroup.procs") + ` || exit 1; ` + script
		}
		out, err := exec.Command("sh", "-c", script).Output()
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var info unix.Siginfo
		// Wait (without reaping) until it is a zombie.
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			t.Fatal(err)
		}
		return pid
	}
	stray := orphan(true)
	known := orphan(true)
	mine := orphan(false)
	knownPids.add(known)
	t.Cleanup(func() { knownPids.remove(known) })

	reaped := reapOrphans(context.Background(), own)
	if !slices.Contains(reaped, stray) {
		t.Errorf("orphan %d from another cgroup not reaped (reaped %v)", stray, reaped)
	}
	if slices.Contains(reaped, known) || slices.Contains(reaped, mine) {
		t.Errorf("reaped %v: includes the known process %d or the shim-cgroup child %d", reaped, known, mine)
	}
	// Their waiters still get the status.
	for _, pid := range []int{known, mine} {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil || ws.Signal() != syscall.SIGKILL {
			t.Errorf("wait for %d: %v %v", pid, ws, err)
		}
	}
}

func TestIsZombieParsesCommandsWithParentheses(t *testing.T) {
	if isZombie(os.Getpid()) {
		t.Error("the test process is not a zombie")
	}
	if isZombie(1 << 30) {
		t.Error("a pid that does not exist is not a zombie")
	}
}

// anyZombie sees an exited child without reaping it, and nothing once it is
// reaped.
func TestAnyZombie(t *testing.T) {
	// The test binary may have zombie children of other tests; start clean.
	for anyZombie() {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil); err != nil {
			break
		}
	}
	if anyZombie() {
		t.Skip("a zombie child this test cannot reap")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if !anyZombie() {
		t.Error("an exited child not yet reaped is not seen")
	}
	// Still there for its own waiter: anyZombie did not reap it.
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wait for the child: %v", err)
	}
	if anyZombie() {
		t.Error("a zombie is seen after its child was reaped")
	}
}
