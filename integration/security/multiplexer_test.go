package security

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
)

// TestInt80SocketcallFamilies is issue 21's first finding: from a default
// container, int $0x80 socketcall(SYS_SOCKET, {AF_VSOCK, ...}) returned a
// socket while socket(AF_VSOCK) got EPERM, and no denial was recorded.
// socketcall's arguments are behind a pointer seccomp cannot read, so the
// profile denies it on 32-bit x86; the direct i386 socket call (359) keeps
// the family check. Every path must fail with EPERM and be streamed as a
// denial naming the syscall, like the 64-bit call.
func TestInt80SocketcallFamilies(t *testing.T) {
	env := harness.Get(t)
	if env.Handler != harness.HandlerStockade {
		t.Skip("checks stockade's profile and denial stream")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("int $0x80 is the 32-bit x86 entry")
	}
	// The 32-bit ABI is off by default (seccomp.compat_abis); this is about
	// what the profile does where a node turns it on.
	env.WithNodeConfig(t, "[seccomp]\ncompat_abis = [\"x86\"]\n")
	probes := []string{"socket-vsock", "int80-socketcall-vsock", "int80-socketcall-alg", "int80-socket-vsock", "int80-socketcall-inet"}
	c := newContainer(t, env, newID("mux"), []string{"sh", "-c", "for p in " + strings.Join(probes, " ") + "; do probe $p; done; probe int80-socket-inet; true"})
	code, out := env.RunToExit(t, c)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, p := range probes {
		if !strings.Contains(out, p+" errno=EPERM") {
			t.Errorf("want %s refused with EPERM, got: %s", p, out)
		}
	}
	// The direct 32-bit socket call is still allowed for permitted families.
	if !strings.Contains(out, "int80-socket-inet ok") {
		t.Errorf("want the direct i386 socket(AF_INET) allowed: %s", out)
	}
	log := denials.LogPath(env.LogDir, denial.Attribution{Namespace: harness.Namespace, Pod: c.ID(), PodUID: c.ID(), Container: c.ID()})
	for _, want := range []string{`"syscall":"socket"`, `"syscall":"socketcall"`} {
		if !waitContains(log, want) {
			b, _ := os.ReadFile(log)
			t.Errorf("no denial record with %s in %s:\n%s", want, log, b)
		}
	}
}

// waitContains waits up to 10s for the file at path to contain s.
func waitContains(path, s string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}
