// Package denials tests stockade's seccomp profile and denial streaming end
// to end: real containers call denied syscalls (through /bin/probe in the
// test image), and the records in the per-pod sink are checked field by
// field. These are stockade's own promises; under runc the tests skip.
package denials

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

func stockadeEnv(t *testing.T) *harness.Env {
	t.Helper()
	env := harness.Get(t)
	env.RequireStockade(t)
	return env
}

var newID = harness.NewID

type buffer = harness.Buffer

// run runs a script in a new busybox container and returns its id, exit
// code and output.
func run(t *testing.T, env *harness.Env, script string, opts ...oci.SpecOpts) (string, uint32, string) {
	t.Helper()
	id := newID("dn")
	code, out := env.RunToExit(t, env.NewContainer(t, id, []string{"sh", "-c", script}, opts...))
	return id, code, out
}

// logPath is where a standalone container's records go: the containerd
// namespace stands for the Kubernetes one, the container for its pod.
func logPath(env *harness.Env, dir, id string) string {
	if dir == "" {
		dir = env.LogDir
	}
	return denials.LogPath(dir, denial.Attribution{Namespace: harness.Namespace, Pod: id, PodUID: id, Container: id})
}

// records waits until the sink file holds records whose counts (plus gap
// drops) add up to at least want, and returns them all.
func records(t *testing.T, path string, want uint64) []denials.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rs := harness.DenialRecords(t, path)
		var total uint64
		for _, r := range rs {
			total += r.Count + r.Dropped
		}
		if total >= want || time.Now().After(deadline) {
			return rs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setDenials rewrites keys of the [denials] section (and adds a [seccomp]
// section) of the node config for the rest of the test. Each standalone
// container gets its own shim, which reads the file at its first create.
func setNodeConfig(t *testing.T, env *harness.Env, denialsKeys, seccompSection string) {
	t.Helper()
	orig, err := os.ReadFile(env.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := string(orig)
	if denialsKeys != "" {
		if !strings.Contains(s, "[denials]\n") {
			t.Fatal("node config has no [denials] section")
		}
		var kept []string
		for _, line := range strings.Split(s, "\n") {
			k, _, _ := strings.Cut(line, "=")
			if strings.Contains(denialsKeys, strings.TrimSpace(k)+" =") && strings.TrimSpace(k) != "" {
				continue // overridden below
			}
			kept = append(kept, line)
		}
		s = strings.Replace(strings.Join(kept, "\n"), "[denials]\n", "[denials]\n"+denialsKeys+"\n", 1)
	}
	if seccompSection != "" {
		s += "\n[seccomp]\n" + seccompSection + "\n"
	}
	if err := os.WriteFile(env.NodeConfig, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(env.NodeConfig, orig, 0o644) })
}

// stockadeCLI runs bin/stockade with args.
func stockadeCLI(t *testing.T, env *harness.Env, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(env.BinDir, "stockade"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("stockade %v: %v\n%s", args, err, out)
	}
	return string(out)
}
