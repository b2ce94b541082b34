package denials

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
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
// must be unaffected, a reader of the live file never sees half a record
// (the sink writes whole lines or nothing), and whatever could not be
// written is counted: once the disk has room again, one gap record says how
// many denials were lost, so records plus gap add up to every denial.
//
// It used to race: it read the file while the shim was still writing, and
// the sink's short write of a record on the full disk was visible until the
// truncate that cut it off. Now the sink reserves space before it writes,
// and the test reads while the shim is still alive (the task is deleted
// only at the end), so the gap record the shim retries every second lands.
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
	ctx := env.Context()
	var out buffer
	c := env.NewContainer(t, newID("dn"), []string{"sh", "-c", fmt.Sprintf("probe -n %d keyctl; echo workload-done", n)})
	task, err := c.NewTask(ctx, env.NewIO(nil, &out, &out))
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	defer func() { _, _ = task.Delete(ctx, client.WithProcessKill) }()
	statusC, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var st client.ExitStatus
	select {
	case st = <-statusC:
	case <-time.After(120 * time.Second):
		t.Fatal("task did not exit within 120s")
	}
	// The exit can be reported before the last output is copied: wait for
	// the copy to end (the shim closes the pipes after the exit) before
	// reading the output, as task.Delete would.
	ioDone := make(chan struct{})
	go func() { task.IO().Wait(); close(ioDone) }()
	select {
	case <-ioDone:
	case <-time.After(30 * time.Second):
		t.Fatal("container output not closed 30s after the exit")
	}
	if st.ExitCode() != 0 || !strings.Contains(out.String(), "workload-done") || !strings.Contains(out.String(), fmt.Sprintf("errors=%d errno=EPERM", n)) {
		t.Fatalf("workload affected by a full sink: exit %d: %s", st.ExitCode(), out.String())
	}
	path := logPath(env, dir, c.ID())
	// While the disk is full: only whole records (readRecords fails the
	// test on a malformed line), some but not all of them. The delivery
	// goroutine may still be working through the queue: wait for the
	// first record rather than assume it is there.
	var written uint64
	for _, r := range records(t, path, 1) {
		written += r.Count
	}
	if written == 0 || written >= n {
		t.Fatalf("%d of %d records on an 8 KiB disk: the test did not fill it", written, n)
	}
	// Room again: the shim's next gap retry accounts for the rest. Room
	// for every record (5,000 of about 450 bytes), since records still
	// queued when the disk grows are written then.
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("grow the tmpfs: %v", err)
	}
	rs := records(t, path, n)
	var delivered, gapped uint64
	for _, r := range rs {
		if r.Type == denials.TypeGap {
			gapped += r.Dropped
		} else {
			delivered += r.Count
		}
	}
	if delivered+gapped != n {
		t.Errorf("delivered %d + gap %d = %d, want %d: denials disappeared on the full disk", delivered, gapped, delivered+gapped, n)
	}
	t.Logf("%d records seen on the full disk; in the end %d records (queued ones written once it had room) and a gap record of %d", written, delivered, gapped)
}

// TestStormRateLimited floods with folding off and a low
// max_records_per_second: the sink gets a bounded number of lines, and the
// aggregates that stand for the suppressed calls count every one of them
// and keep the caller's attribution.
func TestStormRateLimited(t *testing.T) {
	env := stockadeEnv(t)
	const perSecond = 20
	setNodeConfig(t, env, fmt.Sprintf("aggregate_window = \"0\"\nmax_records_per_second = %d", perSecond), "")
	const n = 20000
	start := time.Now()
	id, code, out := run(t, env, fmt.Sprintf("probe -n %d keyctl", n))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("ok=0 errors=%d errno=EPERM", n)) {
		t.Fatalf("workload: exit %d: %s", code, out)
	}
	rs := records(t, logPath(env, "", id), n)
	// Every second the container lived (and the one its last aggregate
	// waits for) allows perSecond lines.
	bound := perSecond * (int(time.Since(start)/time.Second) + 2)
	var delivered, dropped uint64
	lines := 0
	for _, r := range rs {
		if r.Type == denials.TypeGap {
			dropped += r.Dropped
			continue
		}
		if r.Syscall != "keyctl" {
			continue
		}
		lines++
		delivered += r.Count
		if r.Comm != "probe" || !strings.HasSuffix(r.Exe, "/probe") || r.Overflow {
			t.Errorf("record lost its attribution: %+v", r)
		}
	}
	t.Logf("%d denials in %d lines (bound %d), %d dropped", n, lines, bound, dropped)
	if delivered+dropped != n {
		t.Errorf("delivered %d + dropped %d, want %d", delivered, dropped, n)
	}
	if lines > bound {
		t.Errorf("%d lines for %d denials, want at most %d", lines, n, bound)
	}
}
