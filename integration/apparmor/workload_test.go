package apparmor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// criPod is a pod sandbox run through CRI as the kubelet runs one.
type criPod struct {
	ID     string
	Config *runtimeapi.PodSandboxConfig
	IP     string
}

// runCRIPod runs a pod on the stockade handler, the kubelet's way (pod
// network namespace, RuntimeDefault seccomp, no AppArmor field: containerd
// fills in its own default, which stockade replaces with the generated
// profile). It is removed when the test ends.
func runCRIPod(t *testing.T, env *harness.Env, rs runtimeapi.RuntimeServiceClient, name string) *criPod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := env.NewPodConfig(name)
	cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
		Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
	}
	resp, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: env.Handler})
	if err != nil {
		t.Fatalf("run pod sandbox: %v", err)
	}
	p := &criPod{ID: resp.PodSandboxId, Config: cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.ID}); err != nil {
			t.Errorf("stop pod: %v", err)
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.ID}); err != nil {
			t.Errorf("remove pod: %v", err)
		}
	})
	st, err := rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.ID})
	if err != nil {
		t.Fatalf("pod status: %v", err)
	}
	p.IP = st.Status.GetNetwork().GetIp()
	return p
}

// startCRIContainer creates and starts a busybox container in p running
// command, with the security context the kubelet sends by default, and
// returns its ID and host pid.
func startCRIContainer(t *testing.T, rs runtimeapi.RuntimeServiceClient, is runtimeapi.ImageServiceClient, p *criPod, name string, command []string) (string, uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: harness.BusyboxImage}})
	if err != nil || img.Image == nil {
		t.Fatalf("image status of %s: %v", harness.BusyboxImage, err)
	}
	if err := os.MkdirAll(filepath.Join(p.Config.LogDirectory, name), 0o755); err != nil {
		t.Fatal(err)
	}
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: img.Image.Id},
		Command:  command,
		LogPath:  name + "/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: p.Config.Linux.SecurityContext.NamespaceOptions,
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
				Apparmor:         &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}
	cr, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.ID, Config: cc, SandboxConfig: p.Config})
	if err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("start container %s: %v", name, err)
	}
	st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: cr.ContainerId, Verbose: true})
	if err != nil {
		t.Fatalf("container status: %v", err)
	}
	var info struct {
		Pid uint32 `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("container %s: no pid in verbose status (%v): %q", name, err, st.Info["info"])
	}
	return cr.ContainerId, info.Pid
}

// TestHTTPServerPodUnderProfile: an HTTP server (busybox httpd, the
// nginx-class workload the test images offer) in a CRI pod runs confined by
// its generated profile and serves a request from outside the pod.
func TestHTTPServerPodUnderProfile(t *testing.T) {
	env := appArmorEnv(t)
	rs, is := env.CRI(t)
	p := runCRIPod(t, env, rs, "aa-httpd")
	if p.IP == "" {
		t.Fatal("pod has no IP")
	}
	const page = "served under apparmor"
	id, pid := startCRIContainer(t, rs, is, p, "httpd", []string{"sh", "-c",
		"mkdir -p /tmp/www && echo '" + page + "' > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"})

	waitExec(t, pid, "httpd")
	l := label(t, pid)
	if m := generatedLabel.FindStringSubmatch(l); m == nil || m[2] != "enforce" {
		t.Fatalf("httpd runs as %q, want a generated profile in enforce mode", l)
	}

	// Pods reach each other, not the node (no gateway on the test bridge):
	// the request comes from inside the pod, through its network namespace.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var body string
	for i := 0; ; i++ {
		r, err := rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id,
			Cmd: []string{"wget", "-q", "-O", "-", fmt.Sprintf("http://%s:8080/", p.IP)}, Timeout: 60})
		if err != nil {
			t.Fatalf("exec wget: %v", err)
		}
		body = string(r.Stdout)
		if r.ExitCode == 0 {
			break
		}
		if i == 20 {
			t.Fatalf("wget http://%s:8080/: exit %d: %s", p.IP, r.ExitCode, r.Stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if strings.TrimSpace(body) != page {
		t.Errorf("GET: %q, want %q", body, page)
	}
	// Still confined after serving (httpd forks per connection).
	if l2 := label(t, pid); l2 != l {
		t.Errorf("label changed from %q to %q", l, l2)
	}
}

// TestCheckReportsNode: `stockade check` on this node reports AppArmor in
// use and cgroup v2 only.
func TestCheckReportsNode(t *testing.T) {
	if reason := noCgroup2Only(); reason != "" {
		missing(t, requireCgroup2Env, reason)
	}
	aa := noAppArmor()
	env := harness.Get(t)
	out, err := exec.Command(filepath.Join(env.BinDir, "stockade"), "check", "-o", "json", "--config", env.NodeConfig).Output()
	if err != nil {
		t.Fatalf("stockade check: %v\n%s", err, out)
	}
	var rep struct {
		Checks []struct{ Feature, State, Detail, Action string }
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("stockade check -o json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.Feature] = c.State + ": " + c.Detail + " -> " + c.Action
	}
	if c := got["cgroup"]; !strings.HasPrefix(c, "yes: v2 (unified)") {
		t.Errorf("cgroup: %q, want v2 (unified)", c)
	}
	if aa == "" {
		if c := got["apparmor"]; !strings.HasPrefix(c, "yes") {
			t.Errorf("apparmor: %q, want yes on this node", c)
		}
	} else if os.Getenv(requireAppArmorEnv) == "1" {
		t.Errorf("%s=1, but: %s", requireAppArmorEnv, aa)
	}
}
