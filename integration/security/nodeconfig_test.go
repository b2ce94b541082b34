package security

import (
	"os"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
)

// withNodeConfig appends TOML to the node config for the rest of the test.
// Every standalone container gets a shim of its own, which reads the node
// config when its first container is created, so the change applies to
// containers created from now on. Tests in this package do not run in
// parallel.
func withNodeConfig(t *testing.T, env *harness.Env, extra string) {
	t.Helper()
	if env.Handler != harness.HandlerStockade {
		t.Skip("node config is stockade's")
	}
	orig, err := os.ReadFile(env.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env.NodeConfig, append(append([]byte{}, orig...), []byte("\n"+extra+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(env.NodeConfig, orig, 0o644) })
}
