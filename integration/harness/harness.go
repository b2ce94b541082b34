// Package harness runs a private containerd for one integration test package
// (or the benchmark): its own root, state, sockets, CNI network and config in
// a temporary directory, so it never touches a containerd already on the host.
//
// A test package wires it up once:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
//
//	func TestX(t *testing.T) {
//		env := harness.Get(t) // skips when not root or bin/ is not built
//		ctx := env.Context()
//		c, err := env.Client.NewContainer(ctx, id, env.NewContainerOpts(), ...)
//	}
//
// The runtime under test comes from STOCKADE_TEST_RUNTIME: "stockade" (the
// default) or "runc" (containerd-shim-runc-v2 with the pinned runc, the
// baseline every test must also pass against).
package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// Images built by `make images` into bin/images/ and imported by the harness.
const (
	BusyboxImage  = "docker.io/stockade-test/busybox:latest"
	PauseImage    = "docker.io/stockade-test/pause:latest"
	SysbenchImage = "docker.io/stockade-test/sysbench:latest"
)

// Namespaces the images are imported into: one for client-driven tests, and
// the one containerd's CRI plugin works in.
const (
	Namespace    = "stockade-test"
	CRINamespace = "k8s.io"
)

// Runtime handler names (CRI) and the runtime types they stand for.
const (
	HandlerStockade = "stockade"
	HandlerRunc     = "runc"
	RuntimeStockade = "io.containerd.stockade.v1"
	RuntimeRunc     = "io.containerd.runc.v2"
)

// RuntimeEnv is the environment variable that selects the runtime under test.
const RuntimeEnv = "STOCKADE_TEST_RUNTIME"

// KeepEnv, when set to 1, keeps the temporary directory after teardown so
// containerd.log and the configs can be read after a failure.
const KeepEnv = "STOCKADE_TEST_KEEP"

// Env is one running private containerd.
type Env struct {
	Client     *client.Client // connected to Address, default namespace Namespace
	Address    string         // containerd grpc socket path
	Dir        string         // temp dir holding root/, state/, config.toml, logs
	BinDir     string         // absolute path of the repo's bin/
	Runtime    string         // RuntimeStockade or RuntimeRunc
	Handler    string         // CRI runtime handler name: HandlerStockade or HandlerRunc
	NodeConfig string         // stockade node config.toml the stockade handler uses (in Dir)
	LogDir     string         // stockade denial sink dir configured in NodeConfig (in Dir)

	// daemon is shared by the copies ForHandler hands out; only the Env that
	// Start returned owns it and may Close it.
	daemon *daemon
	owner  bool
}

// Context returns a context in the client-test namespace.
func (e *Env) Context() context.Context {
	return namespaces.WithNamespace(context.Background(), Namespace)
}

// RuntimeOpts returns the runtime options that make containerd start the
// right shim for e.Runtime: pass them as client.WithRuntime(e.Runtime, opts).
// runc gets the pinned binary and a runc root inside Dir (the shim's default
// root is shared with any other containerd on the host); stockade gets none,
// as on a node: its node config comes from containerd's environment, and
// containerd's client adds runc's options where it needs them (IoUid/IoGid
// for user-namespaced containers).
func (e *Env) RuntimeOpts() any {
	if e.Handler == HandlerRunc {
		return &options.Options{
			BinaryName: filepath.Join(e.BinDir, "runc"),
			Root:       e.RuncRoot(),
		}
	}
	return nil
}

// NewContainerOpts selects the runtime under test for client.NewContainer.
func (e *Env) NewContainerOpts() client.NewContainerOpts {
	return client.WithRuntime(e.Runtime, e.RuntimeOpts())
}

// RuncRoot is the runc state root used by the runc handler (client and CRI).
func (e *Env) RuncRoot() string { return filepath.Join(e.Dir, "runc") }

// FIFODir is where NewIO creates the stdio FIFOs of client-created tasks,
// instead of the host-wide /run/containerd/fifo.
func (e *Env) FIFODir() string { return filepath.Join(e.Dir, "fifo") }

// NewIO returns a cio.Creator wiring a task's stdio to the given streams
// (any may be nil) through FIFOs in FIFODir.
func (e *Env) NewIO(stdin io.Reader, stdout, stderr io.Writer) cio.Creator {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	return cio.NewCreator(cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(e.FIFODir()))
}

// ForHandler returns a view of the same containerd that selects the other
// runtime (HandlerStockade or HandlerRunc). It shares the client; closing it
// is a no-op. The benchmark uses it to interleave both runtimes.
func (e *Env) ForHandler(handler string) (*Env, error) {
	runtime, err := runtimeFor(handler)
	if err != nil {
		return nil, err
	}
	c := *e
	c.Handler, c.Runtime, c.owner = handler, runtime, false
	return &c, nil
}

func runtimeFor(handler string) (string, error) {
	switch handler {
	case HandlerStockade:
		return RuntimeStockade, nil
	case HandlerRunc:
		return RuntimeRunc, nil
	}
	return "", fmt.Errorf("unknown runtime handler %q (want %q or %q)", handler, HandlerStockade, HandlerRunc)
}

// HandlerFromEnv returns the handler named by STOCKADE_TEST_RUNTIME, or
// HandlerStockade when it is unset.
func HandlerFromEnv() (string, error) {
	h := os.Getenv(RuntimeEnv)
	if h == "" {
		return HandlerStockade, nil
	}
	if _, err := runtimeFor(h); err != nil {
		return "", fmt.Errorf("%s: %w", RuntimeEnv, err)
	}
	return h, nil
}
