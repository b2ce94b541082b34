package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/pelletier/go-toml/v2"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestClientRun runs `echo hello` in busybox through the containerd client
// with the runtime under test and checks exit status and output.
func TestClientRun(t *testing.T) {
	env := Get(t)
	ctx, cancel := context.WithTimeout(env.Context(), 2*time.Minute)
	defer cancel()

	image, err := env.Client.GetImage(ctx, BusyboxImage)
	if err != nil {
		t.Fatalf("get image: %v", err)
	}
	id := "echo-" + strings.ToLower(t.Name())
	ctr, err := env.Client.NewContainer(ctx, id,
		env.NewContainerOpts(),
		client.WithImage(image),
		client.WithNewSnapshot(id+"-snap", image),
		client.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("echo", "hello")),
	)
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	t.Cleanup(func() {
		if err := ctr.Delete(env.Context(), client.WithSnapshotCleanup); err != nil {
			t.Errorf("delete container: %v", err)
		}
	})

	var stdout, stderr bytes.Buffer
	task, err := ctr.NewTask(ctx, env.NewIO(nil, &stdout, &stderr))
	if err != nil {
		t.Fatalf("new task (%s): %v", env.Runtime, err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	var status client.ExitStatus
	select {
	case status = <-exitCh:
	case <-ctx.Done():
		t.Fatalf("task did not exit: %v", ctx.Err())
	}
	code, _, err := status.Result()
	if err != nil {
		t.Fatalf("exit status: %v", err)
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete task: %v", err)
	}
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr.String())
	}
	if got := stdout.String(); got != "hello\n" {
		t.Fatalf("stdout %q, want %q (stderr %q)", got, "hello\n", stderr.String())
	}
}

// TestCRIPod runs a pod sandbox and one container through CRI with the
// runtime under test: the pod gets an address on the test bridge, the
// container runs, logs, and answers an exec.
func TestCRIPod(t *testing.T) {
	env := Get(t)
	rs, _ := env.CRI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	podCfg := env.NewPodConfig("harness-pod")
	pod, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: env.Handler})
	if err != nil {
		t.Fatalf("run pod sandbox (%s): %v", env.Handler, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			t.Errorf("stop pod: %v", err)
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			t.Errorf("remove pod: %v", err)
		}
	})

	st, err := rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.PodSandboxId})
	if err != nil {
		t.Fatalf("pod status: %v", err)
	}
	if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod state %v, want ready", st.Status.State)
	}
	_, subnet, err := net.ParseCIDR(env.PodSubnet())
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(st.Status.GetNetwork().GetIp()); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q is not in the test bridge's subnet %s", st.Status.GetNetwork().GetIp(), subnet)
	}

	created, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod.PodSandboxId,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
			Image:    &runtimeapi.ImageSpec{Image: BusyboxImage},
			Command:  []string{"sh", "-c", "echo cri-hello; exec sleep 600"},
			LogPath:  "main.log",
		},
		SandboxConfig: podCfg,
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	waitFor(t, ctx, "container running and logging", func() error {
		cs, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: created.ContainerId})
		if err != nil {
			return err
		}
		if s := cs.Status.State; s != runtimeapi.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("state %v (exit %d, reason %q)", s, cs.Status.ExitCode, cs.Status.Reason)
		}
		log, err := os.ReadFile(filepath.Join(podCfg.LogDirectory, "main.log"))
		if err != nil || !bytes.Contains(log, []byte("cri-hello")) {
			return fmt.Errorf("log %q (%v)", log, err)
		}
		return nil
	})

	out, err := rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: created.ContainerId, Cmd: []string{"echo", "exec-hello"}, Timeout: 30})
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if out.ExitCode != 0 || string(out.Stdout) != "exec-hello\n" {
		t.Fatalf("exec: exit %d stdout %q stderr %q", out.ExitCode, out.Stdout, out.Stderr)
	}
	if _, err := rs.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: created.ContainerId, Timeout: 5}); err != nil {
		t.Fatalf("stop container: %v", err)
	}
	if _, err := rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("remove container: %v", err)
	}
}

// TestShimPIDs checks that the shims of this containerd are found by their
// -address argument (the benchmark measures their memory through this).
func TestShimPIDs(t *testing.T) {
	env := Get(t)
	pids, err := env.ShimPIDs()
	if err != nil {
		t.Fatal(err)
	}
	for pid, argv0 := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Errorf("shim %d (%s): %v", pid, argv0, err)
		}
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() error) {
	t.Helper()
	var last error
	for {
		if last = cond(); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// The tests below need neither root nor containerd.

func TestConfigsRender(t *testing.T) {
	l, err := newLayout(t.TempDir(), "/repo/bin", HandlerRunc)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.write(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{l.Config, l.NodeConfig} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := toml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s is not valid TOML: %v\n%s", f, err, data)
		}
	}
	if len(l.Bridge) > 15 {
		t.Errorf("bridge name %q longer than IFNAMSIZ-1", l.Bridge)
	}
	if _, _, err := net.ParseCIDR(l.Subnet); err != nil {
		t.Errorf("subnet %q: %v", l.Subnet, err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a`:          "/tmp/a",
		`/tmp/a\040b`:     "/tmp/a b",
		`/tmp/x\134y`:     `/tmp/x\y`,
		`/tmp/trailing\0`: `/tmp/trailing\0`,
	} {
		if got := UnescapeMountPath(in); got != want {
			t.Errorf("UnescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasAddress(t *testing.T) {
	p := proc{argv: []string{"containerd-shim-runc-v2", "-namespace", "x", "-id", "y", "-address", "/tmp/d/containerd.sock"}}
	if !p.hasAddress("/tmp/d/containerd.sock") {
		t.Error("shim argv not matched")
	}
	if p.hasAddress("/run/containerd/containerd.sock") {
		t.Error("matched another containerd's shim")
	}
}
