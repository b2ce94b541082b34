package security

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/integration/harness"
)

func sha(t *testing.T, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestCVE2019_5736_HostBinaryNotOverwritable: a container process races to
// open every /proc/<pid>/exe for writing while execs start (each exec runs
// the runtime binary as its init for a moment). The runtime binary on the
// host must be unchanged: libcontainer runs a sealed copy, never the file.
func TestCVE2019_5736_HostBinaryNotOverwritable(t *testing.T) {
	env := harness.Get(t)
	bin := filepath.Join(env.BinDir, "containerd-shim-stockade-v1")
	if env.Handler == harness.HandlerRunc {
		bin = filepath.Join(env.BinDir, "runc")
	}
	before := sha(t, bin)
	_, task := startLong(t, env)
	attacker := `end=$(($(date +%s)+6)); n=0
while [ $(date +%s) -lt $end ]; do
  for e in /proc/[0-9]*/exe; do (echo pwned > "$e") 2>/dev/null && n=$((n+1)); done
done; echo "writes=$n"`
	done := make(chan string, 1)
	go func() {
		_, out, _ := execIn(t, env, task, func(p *specs.Process) { p.Args = []string{"sh", "-c", attacker} })
		done <- out
	}()
	for i := 0; i < 30; i++ {
		_, _, _ = execIn(t, env, task, func(p *specs.Process) { p.Args = []string{"true"} })
	}
	out := <-done
	if after := sha(t, bin); after != before {
		t.Fatalf("the runtime binary %s was modified from inside a container", bin)
	}
	if !strings.Contains(out, "writes=0") {
		t.Logf("attacker output: %q (writes went to in-container binaries only)", out)
	}
}

// TestCVE2024_21626_LeakedFDAsCwd: a process whose working directory is
// /proc/self/fd/N must not reach the host through a leaked descriptor, for
// every N, neither at exec nor at container start.
func TestCVE2024_21626_LeakedFDAsCwd(t *testing.T) {
	env := harness.Get(t)
	marker := fmt.Sprintf("/run/stockade-cve-2024-21626-%d", os.Getpid())
	if err := os.WriteFile(marker, []byte("host-secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(marker)
	probe := "cat ../../../../../../../.." + marker + " 2>/dev/null; true"
	_, task := startLong(t, env)
	for n := 3; n <= 12; n++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", n)
		_, out, err := execIn(t, env, task, func(p *specs.Process) {
			p.Cwd = cwd
			p.Args = []string{"sh", "-c", probe}
		})
		if err == nil && strings.Contains(out, "host-secret") {
			t.Errorf("exec with cwd %s read a host file: %q", cwd, out)
		}
	}
	for _, n := range []int{3, 4, 5, 6, 7, 8} {
		cwd := fmt.Sprintf("/proc/self/fd/%d", n)
		c := newContainer(t, env, newID("cwd"), []string{"sh", "-c", probe}, oci.WithProcessCwd(cwd))
		var out buffer
		task, err := c.NewTask(env.Context(), env.NewIO(nil, &out, &out))
		if err != nil {
			continue // refused: fine
		}
		sc, _ := task.Wait(env.Context())
		if err := task.Start(env.Context()); err == nil {
			<-sc
		}
		_, _ = task.Delete(env.Context())
		if strings.Contains(out.String(), "host-secret") {
			t.Errorf("container with cwd %s read a host file", cwd)
		}
	}
}

// TestCVE2020_15257_NoAbstractShimSocket: a host-network container sees the
// host's abstract unix sockets; the shim must not have one, and its real
// socket must not be reachable from the container's filesystem.
func TestCVE2020_15257_NoAbstractShimSocket(t *testing.T) {
	env := harness.Get(t)
	if env.Handler == harness.HandlerStockade {
		// By default stockade refuses host-network pods (they cannot be
		// remapped); exempt them here to look from the host network.
		c := newContainer(t, env, newID("hostnet"), []string{"true"}, oci.WithHostNamespace(specs.NetworkNamespace))
		if _, err := c.NewTask(env.Context(), cio.NullIO); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "host network") {
			t.Errorf("host-network container under the default policy: %v; want FailedPrecondition naming the host network", err)
		}
		env.WithNodeConfig(t, "[userns]\nhost_namespace_pods = \"exempt\"")
	}
	code, out := run(t, env, []string{"sh", "-c", "cat /proc/net/unix"},
		oci.WithHostNamespace(specs.NetworkNamespace))
	if code != 0 {
		t.Fatalf("reading /proc/net/unix failed: %d %s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && strings.HasPrefix(f[7], "@") && (strings.Contains(f[7], "containerd-shim") || strings.Contains(f[7], "stockade")) {
			t.Errorf("abstract shim socket visible from a host-network container: %s", f[7])
		}
	}
	// Nor can it reach the sockets by path: containerd's and the shims'
	// directories do not exist in its mount namespace.
	_, task := startLong(t, env)
	_, out, err := execIn(t, env, task, func(p *specs.Process) {
		p.Args = []string{"sh", "-c", "for p in " + env.Address + " " + env.Dir + " /run/containerd/s; do [ -e $p ] && echo visible:$p; done; echo checked"}
	})
	if err != nil || !strings.Contains(out, "checked") || strings.Contains(out, "visible:") {
		t.Errorf("containerd or shim sockets reachable inside the container: %q %v", out, err)
	}
}

// TestMaskedAndReadOnlyPaths: the kernel's sensitive files stay masked or
// read-only inside the container.
func TestMaskedAndReadOnlyPaths(t *testing.T) {
	env := harness.Get(t)
	script := `r=""
head -c 16 /proc/kcore 2>/dev/null | wc -c | grep -qx 0 || r="$r kcore-readable"
(echo c > /proc/sysrq-trigger) 2>/dev/null && r="$r sysrq-writable"
(echo 1 > /proc/sys/kernel/panic) 2>/dev/null && r="$r procsys-writable"
(echo x > /sys/kernel/uevent_helper) 2>/dev/null && r="$r sys-writable"
echo "result:$r"`
	code, out := run(t, env, []string{"sh", "-c", script})
	if code != 0 || strings.TrimSpace(out) != "result:" {
		t.Errorf("sensitive paths not protected: exit %d, %q", code, out)
	}
}

// TestCVE2025_31133_DevNullSymlink: an image whose /dev/null is a symlink to
// a host-sensitive proc file (and a spec without a /dev tmpfs, so the
// image's /dev is used) must not turn masking into a writable bind of the
// target. Either creation is refused, or the target stays unwritable.
func TestCVE2025_31133_DevNullSymlink(t *testing.T) {
	env := harness.Get(t)
	ctx := env.Context()
	if env.Handler == harness.HandlerStockade {
		// Files planted from the host in the upper layer belong to host
		// root, which a remapped container cannot use; this case is about
		// the masking of paths, so run it unremapped.
		env.WithNodeConfig(t, "[userns]\nenabled = false")
	}
	before, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	id := newID("devnull")
	c := newContainer(t, env, id, []string{"sh", "-c", "echo '|/tmp/pwn' > /proc/sys/kernel/core_pattern; echo '|/tmp/pwn' > /dev/null; true"},
		func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			var ms []specs.Mount
			for _, m := range s.Mounts {
				if m.Destination != "/dev" {
					ms = append(ms, m)
				}
			}
			s.Mounts = ms
			return nil
		})
	// Plant the symlink in the container's own snapshot.
	mounts, err := env.Client.SnapshotService("overlayfs").Mounts(ctx, id+"-snap")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := mount.All(mounts, dir); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Join(dir, "dev"), 0o755)
	_ = os.Remove(filepath.Join(dir, "dev", "null"))
	if err := os.Symlink("/proc/sys/kernel/core_pattern", filepath.Join(dir, "dev", "null")); err != nil {
		t.Fatal(err)
	}
	if err := mount.UnmountAll(dir, 0); err != nil {
		t.Fatal(err)
	}
	var out buffer
	task, err := c.NewTask(ctx, env.NewIO(nil, &out, &out))
	if err == nil {
		sc, _ := task.Wait(ctx)
		if err := task.Start(ctx); err == nil {
			select {
			case <-sc:
			case <-time.After(30 * time.Second):
			}
		}
		_, _ = task.Delete(ctx)
	} else {
		t.Logf("refused (fine): %v", err)
	}
	after, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	if !bytes.Equal(before, after) {
		_ = os.WriteFile("/proc/sys/kernel/core_pattern", before, 0o644)
		t.Fatalf("host core_pattern changed from %q to %q", before, after)
	}
}
