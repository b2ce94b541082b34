package harness

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Registry is a private image registry (Debian's docker-registry) on
// 127.0.0.1 with its storage in a directory of its own, for tests whose
// client pulls by reference (CRI PullImage) and so cannot be handed an
// imported image. Nothing outside the machine is ever contacted: containerd
// is pointed at it with Env.AddMirror.
type Registry struct {
	Addr string // host:port on 127.0.0.1
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// registryBinary is docker-registry from Debian's package of that name.
const registryBinary = "docker-registry"

// StartRegistry runs docker-registry on a free loopback port with its
// storage and log under dir, and waits until it answers /v2/.
func StartRegistry(ctx context.Context, dir string) (_ *Registry, retErr error) {
	bin, err := exec.LookPath(registryBinary)
	if err != nil {
		return nil, fmt.Errorf("%s (Debian package docker-registry): %w", registryBinary, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o700); err != nil {
		return nil, err
	}
	addr, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	// The registry's YAML config; JSON is YAML, and json.Marshal quotes
	// the paths safely.
	cfg := map[string]any{
		"version": 0.1,
		"log":     map[string]any{"level": "warn", "accesslog": map[string]any{"disabled": true}},
		"storage": map[string]any{
			"filesystem": map[string]any{"rootdirectory": filepath.Join(dir, "storage")},
			"delete":     map[string]any{"enabled": true},
		},
		"http": map[string]any{"addr": addr},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", registryBinary, err)
	}
	r := &Registry{Addr: addr, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()
	defer func() {
		if retErr != nil {
			r.Close()
		}
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", http.NoBody)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("%s exited at start; see %s", registryBinary, filepath.Join(dir, "registry.log"))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not answer on %s within %s", registryBinary, addr, startTimeout)
		}
	}
}

// freeLoopbackPort asks the kernel for a free port. Another process could
// take it before the registry binds it; the registry then fails to start and
// StartRegistry says so.
func freeLoopbackPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Push copies the single image of an OCI layout tarball (mkimage's output)
// to the registry under the repository path and tag of ref, whose registry
// host is dropped: "registry.k8s.io/e2e-test-images/busybox:1.29-2" lands as
// ADDR/e2e-test-images/busybox:1.29-2, where a mirror for registry.k8s.io
// finds it. It uses skopeo (Debian package skopeo).
func (r *Registry) Push(ctx context.Context, archive, ref string) error {
	host, rest, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(host, ".:") {
		return fmt.Errorf("push %s: %q has no registry host", filepath.Base(archive), ref)
	}
	cmd := exec.CommandContext(ctx, "skopeo", "--insecure-policy", "copy", "--quiet",
		"--dest-tls-verify=false", "oci-archive:"+archive, "docker://"+r.Addr+"/"+rest)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("skopeo copy %s to %s: %w: %s", filepath.Base(archive), ref, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close stops the registry; its storage stays in the directory given to
// StartRegistry.
func (r *Registry) Close() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	}
}

// ImageRef returns the reference mkimage recorded in an OCI layout tarball
// (the io.containerd.image.name annotation of its index).
func ImageRef(archive string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s: no index.json", archive)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", archive, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			return "", fmt.Errorf("%s: index.json: %w", archive, err)
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[annotationImageName] == "" {
			return "", fmt.Errorf("%s: want one manifest named by %s", archive, annotationImageName)
		}
		return idx.Manifests[0].Annotations[annotationImageName], nil
	}
}

// annotationImageName is the index annotation mkimage writes the full
// reference into.
const annotationImageName = "io.containerd.image.name"

// CertsDir is containerd's registry hosts directory (CRI's config_path).
func (e *Env) CertsDir() string { return filepath.Join(e.Dir, "certs.d") }

// AddMirror makes CRI pulls from registry host (e.g. "registry.k8s.io")
// go to endpoint (e.g. "http://127.0.0.1:5000") instead, and only there:
// endpoint is also the hosts.toml's server, so containerd never falls back
// to the real registry. containerd reads the file at each pull.
func (e *Env) AddMirror(host, endpoint string) error {
	dir := filepath.Join(e.CertsDir(), host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hosts := fmt.Sprintf("# written by stockade integration/harness\nserver = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", endpoint, endpoint)
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644)
}
