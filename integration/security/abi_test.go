package security

import (
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/integration/harness"
)

// int80Script makes a 32-bit x86 call (int $0x80 getpid) from a 64-bit
// program and reports how it ended, then proves the container goes on:
// the 64-bit getpid still works.
const int80Script = `probe int80-getpid; echo "int80 status=$?"; probe getpid`

// TestCompatABIOffByDefault: on amd64 the filter covers x86_64 only unless
// the node turns x86 on. A 32-bit call is killed with SIGSYS (libseccomp's
// bad-architecture action, which runc leaves at KILL_THREAD: the probe,
// single-threaded, dies and the shell reports 128+31), and works once
// seccomp.compat_abis names x86, or a pod asks for it where the node allows.
func TestCompatABIOffByDefault(t *testing.T) {
	env := harness.Get(t)
	if env.Handler != harness.HandlerStockade {
		t.Skip("checks stockade's generated filter")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("int $0x80 is the 32-bit x86 entry")
	}
	t.Run("default", func(t *testing.T) {
		code, out := run(t, env, []string{"sh", "-c", int80Script})
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if !strings.Contains(out, "int80 status=159") {
			t.Errorf("want the 32-bit call killed with SIGSYS (status 159), got: %s", out)
		}
		if !strings.Contains(out, "getpid ok") {
			t.Errorf("want the 64-bit getpid allowed after it: %s", out)
		}
	})
	t.Run("node-x86", func(t *testing.T) {
		env.WithNodeConfig(t, "[seccomp]\ncompat_abis = [\"x86\"]")
		code, out := run(t, env, []string{"sh", "-c", int80Script})
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if !strings.Contains(out, "int80-getpid ok") || !strings.Contains(out, "int80 status=0") {
			t.Errorf("want the 32-bit getpid allowed with x86 on: %s", out)
		}
	})
	t.Run("annotation", func(t *testing.T) {
		env.WithNodeConfig(t, "[seccomp]\nallow_compat_abi_annotation = true")
		ann := oci.WithAnnotations(map[string]string{hooks.AnnotationSeccompCompatABIs: "x86"})
		code, out := run(t, env, []string{"sh", "-c", int80Script}, ann)
		if code != 0 || !strings.Contains(out, "int80-getpid ok") {
			t.Errorf("want the 32-bit getpid allowed for a pod asking for x86: exit %d: %s", code, out)
		}
	})
	t.Run("annotation-refused", func(t *testing.T) {
		ann := oci.WithAnnotations(map[string]string{hooks.AnnotationSeccompCompatABIs: "x86"})
		c := newContainer(t, env, newID("abi"), []string{"true"}, ann)
		task, err := c.NewTask(env.Context(), cio.NullIO)
		if err == nil {
			_, _ = task.Delete(env.Context(), client.WithProcessKill)
		}
		if err == nil || !strings.Contains(err.Error(), hooks.AnnotationSeccompCompatABIs) {
			t.Errorf("want the container refused naming %s, got %v", hooks.AnnotationSeccompCompatABIs, err)
		}
	})
}
