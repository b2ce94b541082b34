package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// The package's Env, set by Main. When it is nil, skipReason says why and
// Get skips every test with it.
var (
	pkgMu      sync.Mutex
	pkgEnv     *Env
	skipReason = "harness.Main was not called from TestMain"
)

// Main is the body of a test package's TestMain. When the package cannot run
// here (not root, -short, bin/ not built) it runs the tests anyway so that
// each one skips with the reason; otherwise it starts a private containerd,
// imports the images, runs the tests and tears everything down. It returns
// the exit code for os.Exit.
func Main(m *testing.M) int {
	if !flag.Parsed() {
		flag.Parse()
	}
	handler, err := HandlerFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 2
	}
	binDir, err := FindBinDir()
	if err == nil {
		err = Available(handler, binDir)
	}
	if err == nil && testing.Short() {
		err = errors.New("integration tests do not run with -short")
	}
	if err != nil {
		setSkip(err.Error())
		fmt.Printf("harness: skipping integration tests: %v\n", err)
		return m.Run()
	}

	env, err := Start(context.Background(), Options{Handler: handler, BinDir: binDir, Logf: logf})
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	pkgMu.Lock()
	pkgEnv = env
	pkgMu.Unlock()

	// Ctrl-C during a run would otherwise leave shims, mounts and the CNI
	// bridge behind: tear down first, then die.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopped := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "harness: %v: tearing down %s\n", s, env.Dir)
			_ = env.Close()
			os.Exit(1)
		case <-stopped:
		}
	}()

	code := m.Run()
	signal.Stop(sigs)
	close(stopped)
	if err := env.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "harness: teardown:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func setSkip(reason string) {
	pkgMu.Lock()
	defer pkgMu.Unlock()
	skipReason = reason
}

func logf(format string, args ...any) {
	if testing.Verbose() {
		fmt.Printf("harness: "+format+"\n", args...)
	}
}

// Get returns the package's Env, or skips the test with the reason there is
// none.
func Get(t testing.TB) *Env {
	t.Helper()
	pkgMu.Lock()
	env, reason := pkgEnv, skipReason
	pkgMu.Unlock()
	if env == nil {
		t.Skip(reason)
	}
	return env
}

// Available reports why the harness cannot run the given handler with the
// binaries in binDir, or nil when it can.
func Available(handler, binDir string) error {
	if os.Geteuid() != 0 {
		return errors.New("not root: integration tests need root (run them with sudo or as root)")
	}
	need := []string{"containerd", "containerd-shim-runc-v2", "runc"}
	if handler == HandlerStockade {
		need = append(need, "containerd-shim-stockade-v1")
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("bin/%s missing (run `make deps build`)", b)
		}
	}
	imgs, _ := filepath.Glob(filepath.Join(binDir, "images", "*.tar"))
	if len(imgs) == 0 {
		return errors.New("no images in bin/images (run `make images`)")
	}
	return nil
}

// FindBinDir returns STOCKADE_BIN_DIR if set, else the bin/ directory at the
// root of the module that contains the working directory (go test runs each
// package in its own directory).
func FindBinDir() (string, error) {
	if d := os.Getenv("STOCKADE_BIN_DIR"); d != "" {
		return filepath.Abs(d)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; set STOCKADE_BIN_DIR")
		}
		dir = parent
	}
}
