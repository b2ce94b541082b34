package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criReadyTimeout bounds the wait for CRI to report ready and to list the
// imported images (it learns about them from image events, asynchronously).
const criReadyTimeout = 30 * time.Second

// DialCRI connects to the CRI services on containerd's socket.
func (e *Env) DialCRI() (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+e.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// CRI messages (ListContainers on a busy node) can exceed the 4 MiB
		// default; kubelet raises the limit the same way.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial CRI at %s: %w", e.Address, err)
	}
	return conn, nil
}

// CRI returns CRI runtime and image clients over containerd's socket; the
// connection closes when the test ends.
func (e *Env) CRI(t testing.TB) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := e.DialCRI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// NewPodConfig returns a minimal pod sandbox config named name in the
// "stockade-test" Kubernetes namespace, with a unique UID and a log
// directory under Dir. Callers add annotations, security context, etc.
func (e *Env) NewPodConfig(name string) *runtimeapi.PodSandboxConfig {
	var b [8]byte
	_, _ = rand.Read(b[:])
	uid := hex.EncodeToString(b[:])
	logDir := filepath.Join(e.PodLogDir(), name+"_"+uid)
	_ = os.MkdirAll(logDir, 0o755)
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name:      name,
			Uid:       uid,
			Namespace: "stockade-test",
		},
		Hostname:     name,
		LogDirectory: logDir,
		Labels:       map[string]string{"stockade.dev/test": "true"},
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// waitCRI waits until CRI reports the runtime and network ready and lists
// the pause and busybox images.
func (e *Env) waitCRI(ctx context.Context) error {
	conn, err := e.DialCRI()
	if err != nil {
		return err
	}
	defer conn.Close()
	rs, is := runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)

	ctx, cancel := context.WithTimeout(ctx, criReadyTimeout)
	defer cancel()
	var last error
	for {
		if last = criReady(ctx, rs, is); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRI not ready after %v: %w", criReadyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func criReady(ctx context.Context, rs runtimeapi.RuntimeServiceClient, is runtimeapi.ImageServiceClient) error {
	st, err := rs.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	// Only the two conditions kubelet requires: others (deprecation
	// warnings, e.g. for this VM's cgroup v1) do not stop pods.
	for _, c := range st.GetStatus().GetConditions() {
		if (c.Type == runtimeapi.RuntimeReady || c.Type == runtimeapi.NetworkReady) && !c.Status {
			return fmt.Errorf("condition %s false: %s: %s", c.Type, c.Reason, c.Message)
		}
	}
	for _, ref := range []string{PauseImage, BusyboxImage} {
		resp, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err != nil {
			return fmt.Errorf("image status %s: %w", ref, err)
		}
		if resp.Image == nil {
			return fmt.Errorf("CRI does not list %s yet", ref)
		}
	}
	return nil
}
