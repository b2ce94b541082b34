package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// podNamespace is the Kubernetes namespace of every test pod.
const podNamespace = "stockade-test"

// callTimeout bounds one CRI call; the kubelet's default runtime request
// timeout is 2 minutes, and a slow call here is a bug worth failing on.
const callTimeout = 2 * time.Minute

// The kubelet's default masked and read-only paths (ProcMount "Default"),
// which it sends on every container, not leaving them to the runtime.
var (
	kubeletMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	kubeletReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// kubeletNamespaces is what the kubelet sends for a pod without host
// namespaces and without shareProcessNamespace.
func kubeletNamespaces() *runtimeapi.NamespaceOption {
	return &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
}

func runtimeDefault() *runtimeapi.SecurityProfile {
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
}

// pod is one pod sandbox created through CRI, with what the kubelet keeps
// about it.
type pod struct {
	t   testing.TB
	env *harness.Env
	rs  runtimeapi.RuntimeServiceClient
	is  runtimeapi.ImageServiceClient

	ID     string
	Config *runtimeapi.PodSandboxConfig
	// KubeletDir stands in for /var/lib/kubelet/pods/<uid>: the pod's
	// etc-hosts and termination-log files live here.
	KubeletDir string

	mu         sync.Mutex
	containers []string
}

// newUID returns a random pod UID in the UUID form the API server uses.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// podConfig returns the sandbox config the kubelet would send for a pod
// named name carrying annotations.
func podConfig(env *harness.Env, name string, annotations map[string]string) *runtimeapi.PodSandboxConfig {
	uid := newUID()
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: podNamespace},
		Hostname: name,
		// /var/log/pods/<namespace>_<name>_<uid>
		LogDirectory: filepath.Join(env.PodLogDir(), podNamespace+"_"+name+"_"+uid),
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"198.18.255.10"},
			Searches: []string{podNamespace + ".svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		},
		Labels: map[string]string{
			"io.kubernetes.pod.name":      name,
			"io.kubernetes.pod.namespace": podNamespace,
			"io.kubernetes.pod.uid":       uid,
		},
		Annotations: annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupRoot + "/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: kubeletNamespaces(),
				Seccomp:          runtimeDefault(),
			},
		},
	}
}

// runPod runs a pod sandbox with cfg on the handler under test. The pod is
// torn down when the test ends unless the test did it.
func runPod(t testing.TB, env *harness.Env, cfg *runtimeapi.PodSandboxConfig) (*pod, error) {
	t.Helper()
	rs, is := env.CRI(t)
	// The kubelet creates the pod's log directory before the sandbox.
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := contextWithTimeout()
	defer cancel()
	resp, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: env.Handler})
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox %s (%s): %w", cfg.Metadata.Name, env.Handler, err)
	}
	p := &pod{
		t: t, env: env, rs: rs, is: is,
		ID:         resp.PodSandboxId,
		Config:     cfg,
		KubeletDir: filepath.Join(env.Dir, "kubelet", "pods", cfg.Metadata.Uid),
	}
	t.Cleanup(func() {
		if err := p.teardown(); err != nil {
			t.Errorf("tear down pod %s: %v", cfg.Metadata.Name, err)
		}
	})
	if err := p.writeHosts(); err != nil {
		return nil, err
	}
	return p, nil
}

// mustRunPod is runPod for pods that must start.
func mustRunPod(t testing.TB, env *harness.Env, name string) *pod {
	t.Helper()
	p, err := runPod(t, env, podConfig(env, name, nil))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeHosts writes the pod's etc-hosts file as the kubelet does once the
// sandbox has an IP; every container mounts it at /etc/hosts.
func (p *pod) writeHosts() error {
	ctx, cancel := contextWithTimeout()
	defer cancel()
	st, err := p.rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.ID})
	if err != nil {
		return fmt.Errorf("pod status: %w", err)
	}
	hosts := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		st.Status.GetNetwork().GetIp() + "\t" + p.Config.Hostname + "\n"
	if err := os.MkdirAll(p.KubeletDir, 0o750); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.KubeletDir, "etc-hosts"), []byte(hosts), 0o644)
}

// imageRef resolves busybox to its image ID, which is what the kubelet puts
// in ContainerConfig.Image after ImageStatus or PullImage.
func (p *pod) imageRef(ctx context.Context) (string, error) {
	resp, err := p.is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: harness.BusyboxImage}})
	if err != nil {
		return "", fmt.Errorf("image status: %w", err)
	}
	if resp.Image == nil {
		return "", fmt.Errorf("image %s not known to CRI", harness.BusyboxImage)
	}
	return resp.Image.Id, nil
}

// containerConfig returns the config the kubelet would send for a busybox
// container named name of a BestEffort pod.
func (p *pod) containerConfig(ctx context.Context, name string, command []string) (*runtimeapi.ContainerConfig, error) {
	ref, err := p.imageRef(ctx)
	if err != nil {
		return nil, err
	}
	// The kubelet creates <log dir>/<container>/ and an empty termination
	// log file for each container before CreateContainer.
	logDir := filepath.Join(p.Config.LogDirectory, name)
	termDir := filepath.Join(p.KubeletDir, "containers", name)
	for _, d := range []string{logDir, termDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// World-writable like the kubelet's (it chmods past the umask): the
	// container's user, remapped or not, must be able to write it.
	termLog := filepath.Join(termDir, "termination-log")
	if err := os.WriteFile(termLog, nil, 0o666); err != nil {
		return nil, err
	}
	if err := os.Chmod(termLog, 0o666); err != nil {
		return nil, err
	}
	meta := p.Config.Metadata
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: ref, UserSpecifiedImage: harness.BusyboxImage},
		Command:  command,
		Labels: map[string]string{
			"io.kubernetes.container.name": name,
			"io.kubernetes.pod.name":       meta.Name,
			"io.kubernetes.pod.namespace":  meta.Namespace,
			"io.kubernetes.pod.uid":        meta.Uid,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.restartCount":           "0",
			"io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
		},
		Envs:    []*runtimeapi.KeyValue{{Key: "POD_NAME", Value: []byte(meta.Name)}},
		LogPath: filepath.Join(name, "0.log"),
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/etc/hosts", HostPath: filepath.Join(p.KubeletDir, "etc-hosts")},
			{ContainerPath: "/dev/termination-log", HostPath: termLog},
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: kubeletNamespaces(),
				Seccomp:          runtimeDefault(),
				MaskedPaths:      kubeletMaskedPaths,
				ReadonlyPaths:    kubeletReadonlyPaths,
			},
		},
	}, nil
}

// create creates a busybox container running command in the pod.
func (p *pod) create(name string, command ...string) (string, error) {
	return p.createWith(name, nil, command...)
}

// createWith is create with a chance to change the config the kubelet
// would send (security context, attempt, resources) before it is sent.
func (p *pod) createWith(name string, mutate func(*runtimeapi.ContainerConfig), command ...string) (string, error) {
	ctx, cancel := contextWithTimeout()
	defer cancel()
	cfg, err := p.containerConfig(ctx, name, command)
	if err != nil {
		return "", err
	}
	if mutate != nil {
		mutate(cfg)
	}
	resp, err := p.rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.ID, Config: cfg, SandboxConfig: p.Config,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	p.mu.Lock()
	p.containers = append(p.containers, resp.ContainerId)
	p.mu.Unlock()
	return resp.ContainerId, nil
}

// start creates and starts a container, failing the test on error.
func (p *pod) start(name string, command ...string) string {
	p.t.Helper()
	return p.startWith(name, nil, command...)
}

// startWith is start with createWith's mutate.
func (p *pod) startWith(name string, mutate func(*runtimeapi.ContainerConfig), command ...string) string {
	p.t.Helper()
	id, err := p.createWith(name, mutate, command...)
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout()
	defer cancel()
	if _, err := p.rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		p.t.Fatalf("start container %s: %v", name, err)
	}
	return id
}

// Containers returns the IDs of the containers created in the pod.
func (p *pod) Containers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.containers...)
}

// teardown removes the pod in the kubelet's order — stop the containers,
// stop the sandbox, then garbage-collect containers and sandbox — and then
// removes the pod cgroup, which is the kubelet's job too. It is idempotent.
func (p *pod) teardown() error {
	p.mu.Lock()
	ids, sandbox := p.containers, p.ID
	p.containers, p.ID = nil, ""
	p.mu.Unlock()
	if sandbox == "" {
		return nil
	}
	ctx, cancel := contextWithTimeout()
	defer cancel()
	// The kubelet stops a pod's containers concurrently, each with its
	// grace period; sleep as PID 1 ignores SIGTERM, so each stop escalates.
	stopErrs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.rs.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
				stopErrs[i] = fmt.Errorf("stop container %s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	errs := stopErrs
	if _, err := p.rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox}); err != nil {
		errs = append(errs, fmt.Errorf("stop pod: %w", err))
	}
	for _, id := range ids {
		if _, err := p.rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", id, err))
		}
	}
	if _, err := p.rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox}); err != nil {
		errs = append(errs, fmt.Errorf("remove pod: %w", err))
	}
	return errors.Join(errs...)
}

// containerInfo is the part of CRI's verbose container status used here.
type containerInfo struct {
	SandboxID   string      `json:"sandboxID"`
	Pid         int         `json:"pid"`
	RuntimeType string      `json:"runtimeType"`
	RuntimeSpec *specs.Spec `json:"runtimeSpec"`
}

// status returns a container's CRI status and verbose info.
func (p *pod) status(id string) (*runtimeapi.ContainerStatus, *containerInfo, error) {
	ctx, cancel := contextWithTimeout()
	defer cancel()
	resp, err := p.rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return nil, nil, fmt.Errorf("container status %s: %w", id, err)
	}
	var info containerInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		return nil, nil, fmt.Errorf("container status %s: verbose info: %w", id, err)
	}
	return resp.Status, &info, nil
}

// sandboxInfo is the part of CRI's verbose sandbox status used here.
type sandboxInfo struct {
	Pid         int         `json:"pid"`
	RuntimeType string      `json:"runtimeType"`
	RuntimeSpec *specs.Spec `json:"runtimeSpec"`
}

func (p *pod) sandboxStatus() (*runtimeapi.PodSandboxStatus, *sandboxInfo, error) {
	ctx, cancel := contextWithTimeout()
	defer cancel()
	resp, err := p.rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.ID, Verbose: true})
	if err != nil {
		return nil, nil, fmt.Errorf("pod status: %w", err)
	}
	var info sandboxInfo
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		return nil, nil, fmt.Errorf("pod status: verbose info: %w", err)
	}
	return resp.Status, &info, nil
}

// waitState polls until container id reaches state, and returns its status.
func (p *pod) waitState(id string, state runtimeapi.ContainerState, timeout time.Duration) *runtimeapi.ContainerStatus {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _, err := p.status(id)
		if err != nil {
			p.t.Fatal(err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("container %s: state %v after %v, want %v (exit %d, reason %q, message %q)",
				st.Metadata.GetName(), st.State, timeout, state, st.ExitCode, st.Reason, st.Message)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// execSync runs cmd in a container the way the kubelet runs exec probes.
func (p *pod) execSync(id string, timeout time.Duration, cmd ...string) (*runtimeapi.ExecSyncResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+callTimeout)
	defer cancel()
	return p.rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: int64(timeout / time.Second)})
}

// mustExec runs cmd and fails the test unless it exits 0; it returns stdout.
func (p *pod) mustExec(id string, cmd ...string) string {
	p.t.Helper()
	out, err := p.execSync(id, 30*time.Second, cmd...)
	if err != nil {
		p.t.Fatalf("exec %q: %v", cmd, err)
	}
	if out.ExitCode != 0 {
		p.t.Fatalf("exec %q: exit %d, stdout %q, stderr %q", cmd, out.ExitCode, out.Stdout, out.Stderr)
	}
	return string(out.Stdout)
}

// contextWithTimeout bounds one CRI call.
func contextWithTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// stockadeOnly skips tests of promises stockade makes beyond the CRI
// contract, which the runc handler does not make.
func stockadeOnly(t testing.TB, env *harness.Env) {
	t.Helper()
	if env.Handler != harness.HandlerStockade {
		t.Skipf("tests a promise stockade makes beyond the CRI contract; runtime handler under test is %s", env.Handler)
	}
}

// uniqueName returns a DNS-label pod name for this test.
func uniqueName(t testing.TB, suffix string) string {
	name := strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	name = strings.NewReplacer("/", "-", "_", "-").Replace(name)
	if len(name) > 40 {
		name = name[:40]
	}
	if suffix != "" {
		name += "-" + suffix
	}
	return name
}
