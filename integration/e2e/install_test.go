package e2e

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// The cluster's containerd must register the stockade handler as the
// shipped drop-in (contrib/containerd/stockade.toml) does, so that the
// tests run what an operator installs: the same runtime table, options
// included (containerd 2.3 fails hostUsers: false pods when a non-runc
// runtime has an options block, FACTS.md).
func TestRuntimeHandlerAsShipped(t *testing.T) {
	c := get(t)
	t.Parallel()
	shipped := stockadeRuntime(t, filepath.Join(repoDir, "contrib", "containerd", "stockade.toml"))
	running := stockadeRuntime(t, filepath.Join(c.Env.Dir, "config.toml"))
	if !reflect.DeepEqual(shipped, running) {
		t.Fatalf("the stockade runtime the tests use differs from the shipped drop-in:\nshipped: %v\ntests:   %v", shipped, running)
	}
}

// stockadeRuntime returns the stockade runtime table of a containerd
// config (version 3).
func stockadeRuntime(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := toml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v := any(cfg)
	for _, key := range []string{"plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "stockade"} {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: no table at %q", path, key)
		}
		v = m[key]
	}
	rt, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: no stockade runtime", path)
	}
	return rt
}
