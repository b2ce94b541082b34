package denials

import (
	"strconv"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
)

// TestReportFilesAnotherSourcesRecord: a record from another source (an
// AppArmor denial) gets the container's attribution and a sequence number
// and reaches the sinks; for an unknown container nothing is filed.
func TestReportFilesAnotherSourcesRecord(t *testing.T) {
	sink := &memSink{}
	a := newTestAgent(t, testConfig(t), sink)
	attr := denial.Attribution{Namespace: "ns", Pod: "web", PodUID: "uid", Container: "app", Image: "img"}
	if err := a.Register("c1", attr, denial.ModeEnforce, "p"); err != nil {
		t.Fatal(err)
	}
	if a.Report("other", &Record{Source: SourceAppArmor, Operation: "open"}) {
		t.Error("Report filed a record for an unregistered container")
	}
	if !a.Report("c1", &Record{Source: SourceAppArmor, Time: time.Unix(1, 0), Pid: 7, Operation: "mknod",
		Path: "/sys/fs/bpf/x", DeniedMask: "c", Action: ActionDenied, Errno: "EACCES", Count: 1}) {
		t.Fatal("Report refused a registered container")
	}
	var got []Record
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = sink.records(); len(got) > 0 {
			break
		}
	}
	if len(got) != 1 {
		t.Fatalf("sink got %d records, want 1", len(got))
	}
	r := got[0]
	if r.Source != SourceAppArmor || r.Namespace != "ns" || r.Pod != "web" || r.Container != "app" || r.ContainerID != "c1" ||
		r.Path != "/sys/fs/bpf/x" || r.Operation != "mknod" || r.Seq != 1 {
		t.Errorf("record %+v", r)
	}
}

// TestReportFoldsAndRateLimits: a container looping on a denied path gets
// the folding and the record rate limit seccomp denials get, and every
// call is still counted.
func TestReportFoldsAndRateLimits(t *testing.T) {
	sink := &memSink{}
	cfg := testConfig(t)
	cfg.MaxRecordsPerSecond = 5
	a := newTestAgent(t, cfg, sink)
	attr := denial.Attribution{Namespace: "ns", Pod: "web", PodUID: "uid", Container: "app"}
	if err := a.Register("c1", attr, denial.ModeEnforce, "p"); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		// Half repeat one path (folded), half name a new path each time
		// (first occurrences, bounded by the rate limit).
		path := "/proc/sys/kernel/x"
		if i%2 == 1 {
			path = "/proc/sys/kernel/y" + strconv.Itoa(i)
		}
		a.Report("c1", &Record{Source: SourceAppArmor, Time: time.Unix(1, 0), Pid: 7, Operation: "open",
			Path: path, DeniedMask: "w", Action: ActionDenied, Errno: "EACCES", Count: 1})
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	var total uint64
	recs := sink.records()
	for _, r := range recs {
		if r.Source != SourceAppArmor || r.Pod != "web" {
			t.Errorf("record %+v", r)
		}
		total += r.Count
	}
	if total != n {
		t.Errorf("records count %d calls, want %d", total, n)
	}
	if len(recs) > 5+maxWindowsPerContainer+2 {
		t.Errorf("%d records for %d calls: not bounded by the rate limit", len(recs), n)
	}
	t.Logf("%d calls -> %d records", n, len(recs))
}
