package notifytest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stockade-dev/stockade/shim/denials"
	"github.com/stockade-dev/stockade/shim/denials/notifytest"
)

// SumDir reads the sink's own record format: a denial's count and a gap's
// dropped count, in nested pod directories.
func TestSumDirReadsTheSinkFormat(t *testing.T) {
	dir := t.TempDir()
	pod := filepath.Join(dir, "ns_pod_uid")
	if err := os.MkdirAll(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	var lines []byte
	for _, r := range []denials.Record{{Count: 3, Syscall: "keyctl"}, {Type: denials.TypeGap, Dropped: 2}, {Count: 1}} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(append(lines, b...), '\n')
	}
	if err := os.WriteFile(filepath.Join(pod, "c.log"), lines, 0o644); err != nil {
		t.Fatal(err)
	}
	d, g, err := notifytest.SumDir(dir)
	if err != nil || d != 4 || g != 2 {
		t.Fatalf("SumDir = %d, %d, %v; want 4, 2", d, g, err)
	}
	if d, g, err := notifytest.SumDir(filepath.Join(dir, "missing")); err != nil || d+g != 0 {
		t.Fatalf("missing dir: %d %d %v", d, g, err)
	}
}
