package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/stockade-dev/stockade/internal/roottest"
	"github.com/stockade-dev/stockade/profiles/userns"
)

// TestWriteNetSysctls writes into a netns the host user namespace owns,
// which is the situation of every CRI pod netns.
func TestWriteNetSysctls(t *testing.T) {
	roottest.Require(t, "mounts and setns")
	const key = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
	before, err := os.ReadFile(key)
	if err != nil {
		t.Skipf("no %s: %v", key, err)
	}
	cmd := exec.Command("sh", "-c", "read x; cat "+key+" /proc/sys/net/ipv4/ping_group_range")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, stop := roottest.StartBlocked(t, cmd)
	defer stop()

	netns := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	err = WriteNetSysctls(netns, map[string]string{
		"net.ipv4.ip_unprivileged_port_start": "0",
		"net/ipv4/ping_group_range":           "2147483648 2147549183",
	})
	if err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, out.String())
	}
	if got := strings.Fields(out.String()); strings.Join(got, " ") != "0 2147483648 2147549183" {
		t.Errorf("sysctls in the pod netns: %q", out.String())
	}
	after, _ := os.ReadFile(key)
	if string(after) != string(before) {
		t.Errorf("host %s changed from %q to %q", key, before, after)
	}

	// The shim's own namespace is refused.
	if err := WriteNetSysctls("/proc/self/ns/net", map[string]string{"net.ipv4.ip_forward": "1"}); !errors.Is(err, userns.ErrInvalid) {
		t.Errorf("write into own netns = %v, want ErrInvalid", err)
	}
	if err := WriteNetSysctls("/nonexistent", map[string]string{"net.ipv4.ip_forward": "1"}); err == nil {
		t.Error("missing netns: no error")
	}
}
