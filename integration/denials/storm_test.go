package denials

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/shim/denials"
)

// TestStormEveryDenialAccountedFor floods the agent with denials while
// folding is off and the queue is tiny, so records are dropped: every denial
// must still be delivered or counted in a gap record.
func TestStormEveryDenialAccountedFor(t *testing.T) {
	env := stockadeEnv(t)
	setNodeConfig(t, env, `aggregate_window = "0"`+"\n"+`queue_size = 16`, "")
	const n = 20000
	id, code, out := run(t, env, fmt.Sprintf("probe -n %d keyctl", n))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("ok=0 errors=%d errno=EPERM", n)) {
		t.Fatalf("workload: exit %d: %s", code, out)
	}
	rs := records(t, logPath(env, "", id), n)
	var delivered, dropped uint64
	var gaps int
	for _, r := range rs {
		switch r.Type {
		case denials.TypeGap:
			gaps++
			dropped += r.Dropped
		case "":
			if r.Syscall != "keyctl" {
				t.Errorf("unexpected record %+v", r)
			}
			delivered += r.Count
		}
	}
	t.Logf("%d denials: %d delivered, %d dropped in %d gap records", n, delivered, dropped, gaps)
	if delivered+dropped != n {
		t.Errorf("delivered %d + dropped %d = %d, want %d: denials disappeared", delivered, dropped, delivered+dropped, n)
	}
}

// TestFullDiskUnderSink puts the sink on a tiny filesystem: the workload
// must be unaffected and whatever cannot be written is counted, not lost
// silently.
func TestFullDiskUnderSink(t *testing.T) {
	env := stockadeEnv(t)
	dir := filepath.Join(t.TempDir(), "sink")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8k"); err != nil {
		t.Fatalf("mount tiny tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	setNodeConfig(t, env, fmt.Sprintf("dir = %q\naggregate_window = \"0\"", dir), "")
	const n = 5000
	id, code, out := run(t, env, fmt.Sprintf("probe -n %d keyctl; echo workload-done", n))
	if code != 0 || !strings.Contains(out, "workload-done") || !strings.Contains(out, fmt.Sprintf("errors=%d errno=EPERM", n)) {
		t.Fatalf("workload affected by a full sink: exit %d: %s", code, out)
	}
	rs := readRecords(t, logPath(env, dir, id))
	var written uint64
	for _, r := range rs {
		written += r.Count
	}
	if written == 0 || written >= n {
		t.Errorf("%d of %d records on an 8 KiB disk: the test did not fill it", written, n)
	}
	// The rest is accounted for in the shim's log (written once per cause)
	// and by the next gap record once the disk has room again.
	t.Logf("%d records fit on the full disk; the workload ran to completion", written)
}
