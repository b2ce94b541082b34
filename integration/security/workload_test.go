package security

import (
	"context"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
)

// TestWorkloadNameCannotBeBorrowed is issue 21's sixth finding through CRI:
// a pod annotated stockade.dev/workload: web in record mode stored
// <ns>/web/app, and the real web replicas were then held to it. A pod may
// only name its own workload now: the decoy's container is refused with an
// error naming the annotation and nothing is stored under web; a real
// replica still records into web.
func TestWorkloadNameCannotBeBorrowed(t *testing.T) {
	env := harness.Get(t)
	store := t.TempDir()
	env.WithNodeConfig(t, "[record]\nallow = true\nstore_dir = \""+store+"\"")
	rs, is := env.CRI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: harness.BusyboxImage}})
	if err != nil || img.Image == nil {
		t.Fatalf("busybox in CRI: %v", err)
	}
	runPod := func(name string, ann map[string]string) (string, *runtimeapi.PodSandboxConfig) {
		cfg := env.NewPodConfig(name)
		cfg.Annotations = ann
		resp, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: env.Handler})
		if err != nil {
			t.Fatalf("run pod %s: %v", name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, _ = rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
			_, _ = rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		})
		return resp.PodSandboxId, cfg
	}
	create := func(pod string, cfg *runtimeapi.PodSandboxConfig) (string, error) {
		resp, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId: pod, SandboxConfig: cfg,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Image:    &runtimeapi.ImageSpec{Image: img.Image.Id, UserSpecifiedImage: harness.BusyboxImage},
				Command:  []string{"sh", "-c", "echo hi > /tmp/f"},
			},
		})
		return resp.GetContainerId(), err
	}
	record := map[string]string{"stockade.dev/seccomp-mode": "record"}
	decoyAnn := map[string]string{"stockade.dev/seccomp-mode": "record", "stockade.dev/workload": "web"}

	// CRI creates the task, and so runs stockade's pipeline, at start.
	pod, cfg := runPod("decoy", decoyAnn)
	id, err := create(pod, cfg)
	if err == nil {
		_, err = rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	}
	if err == nil || !strings.Contains(err.Error(), "stockade.dev/workload") {
		t.Fatalf("decoy pod naming workload web: %v, want its container refused naming the annotation", err)
	}
	s, err := profilestore.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	web := recorded.Name{Namespace: "stockade-test", Workload: "web", Container: "app"}
	if _, err := s.Load(web); err == nil {
		t.Fatalf("the decoy stored %s", web)
	}

	// A real replica records into its workload's profile.
	pod, cfg = runPod("web-7c9d8f6b5-x2k4p", record)
	id, err = create(pod, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if p, err := s.Load(web); err == nil && p.Runs == 1 {
			break
		}
		if time.Now().After(deadline) {
			p, err := s.Load(web)
			t.Fatalf("the real replica's recording: %+v, %v", p, err)
		}
	}
}
