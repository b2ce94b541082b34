package harness

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stockade-dev/stockade/shim/denials"
)

// WithNodeConfig appends TOML to the stockade node config for the rest of
// the test. Every standalone container gets a shim of its own, which reads
// the node config when its first container is created, so the change
// applies to containers created from now on; tests that use it must not
// run in parallel. Under the runc handler there is no node config: the
// test is skipped.
func (e *Env) WithNodeConfig(t testing.TB, extra string) {
	t.Helper()
	if e.Handler != HandlerStockade {
		t.Skip("node config is stockade's")
	}
	orig, err := os.ReadFile(e.NodeConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.NodeConfig, append(append([]byte{}, orig...), []byte("\n"+extra+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(e.NodeConfig, orig, 0o644) })
}

// DenialRecords reads every record of a container's denial log at path,
// rotated files included. A line that is not a record fails the test.
func DenialRecords(t testing.TB, path string) []denials.Record {
	t.Helper()
	var rs []denials.Record
	files, _ := filepath.Glob(path + "*") // rotated files too
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r denials.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("%s: malformed record %q: %v", f, sc.Text(), err)
				continue
			}
			rs = append(rs, r)
		}
		fh.Close()
	}
	return rs
}
