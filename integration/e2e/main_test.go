package e2e

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
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Environment of the tier.
const (
	// k8sBinEnv names the directory of the Kubernetes binaries
	// (hack/e2e/build-k8s.sh prints it).
	k8sBinEnv = "STOCKADE_K8S_BIN"
	// requireEnv=1 turns "cannot run here" from a skip into a failure:
	// make e2e sets it, so a CI run cannot pass by skipping everything.
	requireEnv = "STOCKADE_E2E_REQUIRE"
	// logsDir receives the components' logs after a failed run.
	logsDirEnv = "STOCKADE_E2E_LOGS"
)

var (
	cluster    *Cluster
	skipReason string
	repoDir    string
	binDir     string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := available(); err != nil {
		if os.Getenv(requireEnv) == "1" {
			fmt.Fprintf(os.Stderr, "e2e: cannot run: %v\n", err)
			return 1
		}
		skipReason = err.Error()
		fmt.Printf("e2e: skipping: %v\n", err)
		return m.Run()
	}
	start := time.Now()
	c, err := Start(context.Background(), Options{
		K8sBin:  os.Getenv(k8sBinEnv),
		RepoDir: repoDir,
		Logf: func(format string, args ...any) {
			if testing.Verbose() {
				fmt.Printf("e2e: "+format+"\n", args...)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start cluster:", err)
		return 1
	}
	fmt.Printf("e2e: cluster up in %v (node %s at %s)\n", time.Since(start).Round(time.Millisecond), NodeName, c.NodeIP)
	cluster = c

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var once sync.Once
	stop := func() error {
		var err error
		once.Do(func() { err = c.Stop() })
		return err
	}
	go func() {
		s, ok := <-sigs
		if ok {
			fmt.Fprintf(os.Stderr, "e2e: %v: tearing down\n", s)
			_ = stop()
			os.Exit(1)
		}
	}()

	code := m.Run()
	if code != 0 {
		dst := os.Getenv(logsDirEnv)
		if dst == "" {
			dst = filepath.Join(os.TempDir(), "stockade-e2e-logs")
		}
		if err := c.SaveLogs(dst); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: save logs:", err)
		}
		fmt.Fprintf(os.Stderr, "e2e: logs of the failed run in %s\n", dst)
	}
	signal.Stop(sigs)
	t0 := time.Now()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: teardown:", err)
		if code == 0 {
			code = 1
		}
	}
	fmt.Printf("e2e: teardown in %v\n", time.Since(t0).Round(time.Millisecond))
	return code
}

// available says why the tier cannot run here, or nil.
func available() error {
	if testing.Short() {
		return errors.New("the Kubernetes tier does not run with -short")
	}
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	var err error
	if binDir, err = harness.FindBinDir(); err != nil {
		return err
	}
	repoDir = filepath.Dir(binDir)
	if err := harness.Available(harness.HandlerStockade, binDir); err != nil {
		return err
	}
	k8s := os.Getenv(k8sBinEnv)
	if k8s == "" {
		return fmt.Errorf("%s is not set (make e2e sets it from hack/e2e/build-k8s.sh)", k8sBinEnv)
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		if _, err := os.Stat(filepath.Join(k8s, b)); err != nil {
			return fmt.Errorf("%s/%s missing (run hack/e2e/build-k8s.sh)", k8s, b)
		}
	}
	return nil
}

// get returns the running cluster or skips t with the reason there is none.
func get(t testing.TB) *Cluster {
	t.Helper()
	if cluster == nil {
		t.Skip(skipReason)
	}
	return cluster
}
