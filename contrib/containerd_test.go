package contrib_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

const dropIn = "containerd/stockade.toml"

// mainConfig is a node's containerd config with CRI settings of its own,
// which the drop-in must extend, not replace.
const mainConfig = `version = 3
imports = [%q]

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
`

// writeNode lays out etc/containerd with the main config and the drop-in
// in conf.d, and returns the main config's path.
func writeNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	confd := filepath.Join(dir, "conf.d")
	if err := os.MkdirAll(confd, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confd, "stockade.toml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(main, fmt.Appendf(nil, mainConfig, filepath.Join(confd, "*.toml")), 0o644); err != nil {
		t.Fatal(err)
	}
	return main
}

// lookup follows keys through nested TOML tables.
func lookup(t *testing.T, m map[string]any, keys ...string) any {
	t.Helper()
	var v any = m
	for i, k := range keys {
		table, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is not a table", keys[:i])
		}
		if v, ok = table[k]; !ok {
			t.Fatalf("no key %v", keys[:i+1])
		}
	}
	return v
}

var stockadeRuntime = []string{"io.containerd.cri.v1.runtime", "containerd", "runtimes", "stockade"}

// TestDropInHasNoOptionsBlock: containerd 2.3's client converts a runtime's
// options into runc's options type for user-namespaced pods (hostUsers:
// false) and fails on runtimeoptions.v1.Options, so the shipped drop-in must
// not have an options table; the node config comes from the default path
// or $STOCKADE_CONFIG.
func TestDropInHasNoOptionsBlock(t *testing.T) {
	data, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	rt := lookup(t, doc, append([]string{"plugins"}, stockadeRuntime...)...).(map[string]any)
	if opts, ok := rt["options"]; ok {
		t.Errorf("the stockade handler has an options table %v: hostUsers: false pods would fail in containerd's client", opts)
	}
}

// TestDropInWithContainerd asks the pinned containerd binary (make deps) to
// load the node config with its imports and dump the result: the stockade
// handler must appear, decoded by the CRI plugin's own struct (a misspelled
// key would be missing from the dump), and the node's own CRI settings must
// survive the merge (containerd before 2.0 replaced a plugin's whole table).
func TestDropInWithContainerd(t *testing.T) {
	bin, err := filepath.Abs("../bin/containerd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("bin/containerd not built (make deps): %v", err)
	}
	out, err := exec.Command(bin, "--config", writeNode(t), "config", "dump").Output()
	if err != nil {
		t.Fatalf("containerd config dump: %v", err)
	}
	var dump map[string]any
	if err := toml.Unmarshal(out, &dump); err != nil {
		t.Fatal(err)
	}
	rt := lookup(t, dump, append([]string{"plugins"}, stockadeRuntime...)...).(map[string]any)
	want := map[string]any{
		"runtime_type":    "io.containerd.stockade.v1",
		"pod_annotations": []any{"stockade.dev/*"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(rt[k], w) {
			t.Errorf("dumped %s = %#v, want %#v", k, rt[k], w)
		}
	}
	cri := lookup(t, dump, "plugins", "io.containerd.cri.v1.runtime").(map[string]any)
	if cri["restrict_oom_score_adj"] != true {
		t.Error("the node's restrict_oom_score_adj was lost in the merge")
	}
	if got := lookup(t, cri, "containerd", "runtimes", "runc", "runtime_type"); got != "io.containerd.runc.v2" {
		t.Errorf("the node's runc runtime was lost in the merge: %v", got)
	}
}
