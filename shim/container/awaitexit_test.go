package container

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// awaitExit returns only once the child has exited, and leaves it to be
// reaped by its waiter with its exit status.
func TestAwaitExitLeavesTheChildToItsWaiter(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 0.3; exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t0 := time.Now()
	awaitExit(pid)
	if d := time.Since(t0); d < 200*time.Millisecond {
		// Ordering, not timing: the child sleeps 300 ms before it exits.
		t.Errorf("awaitExit returned after %v, before the child could exit", d)
	}
	if st := procState(t, pid); st != "Z" {
		t.Errorf("child state after awaitExit = %q, want Z (exited, not reaped)", st)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("Wait after awaitExit = %v, want exit status 7", err)
	}
}

// A pid that is not there, or not watchable, returns at once.
func TestAwaitExitOfNoProcess(t *testing.T) {
	awaitExit(0)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	awaitExit(cmd.Process.Pid) // reaped: pidfd_open fails
}

func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}
