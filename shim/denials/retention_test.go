package denials

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
)

// retentionClock is a settable clock for sweeps.
type retentionClock struct{ t time.Time }

func (c *retentionClock) now() time.Time { return c.t }

func podAttr(pod string) denial.Attribution {
	return denial.Attribution{Namespace: "ns", Pod: pod, PodUID: pod + "-uid", Container: "app"}
}

func writeFor(t *testing.T, s *FileSink, a denial.Attribution, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		r := rec("c-"+a.Pod, 1)
		r.Namespace, r.Pod, r.PodUID, r.Container = a.Namespace, a.Pod, a.PodUID, a.Container
		if err := writeRec(t, s, r); err != nil {
			t.Fatal(err)
		}
	}
}

// age sets the mtime of every file under dir.
func age(t *testing.T, dir string, when time.Time) {
	t.Helper()
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if err := os.Chtimes(filepath.Join(dir, f.Name()), when, when); err != nil {
			t.Fatal(err)
		}
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestSweepRetention: pod directories go a retention after their pod is
// gone, never while a shim (this one or another) holds them; a pod whose
// shim died (no marker) goes a retention after its last record.
func TestSweepRetention(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log")
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	clk := &retentionClock{t0}
	s := NewFileSink(root, 1<<20, 3).Bound(24*time.Hour, 0, clk.now)
	other := NewFileSink(root, 1<<20, 3).Bound(24*time.Hour, 0, clk.now) // another shim

	live, released, crashed, elsewhere := podAttr("live"), podAttr("released"), podAttr("crashed"), podAttr("elsewhere")
	s.Hold(live)
	writeFor(t, s, live, 2)
	s.Hold(released)
	writeFor(t, s, released, 2)
	other.Hold(elsewhere)
	writeFor(t, other, elsewhere, 1)
	// A shim that died: its files, no lock, no marker, last record at t0.
	crash := NewFileSink(root, 1<<20, 3)
	writeFor(t, crash, crashed, 1)
	for path, f := range crash.files { // die without releasing: drop the fds
		_ = f.w.Close()
		delete(crash.files, path)
	}
	for _, p := range crash.pods {
		_ = closeFd(p.lock)
	}
	dirOf := func(a denial.Attribution) string { return s.podDir(a) }
	for _, a := range []denial.Attribution{live, released, crashed, elsewhere} {
		age(t, dirOf(a), t0)
	}
	s.Release(released) // the pod's last container is deleted at t0
	if !exists(filepath.Join(dirOf(released), releasedMarker)) {
		t.Fatal("no released marker")
	}

	clk.t = t0.Add(23 * time.Hour)
	if st, err := s.Sweep(); err != nil || st.Pods != 0 {
		t.Fatalf("sweep within retention removed %d pods (%v)", st.Pods, err)
	}
	clk.t = t0.Add(25 * time.Hour)
	st, err := s.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[denial.Attribution]bool{live: true, released: false, crashed: false, elsewhere: true} {
		if got := exists(dirOf(a)); got != want {
			t.Errorf("%s: exists=%v after the sweep, want %v", a.Pod, got, want)
		}
	}
	if st.Pods != 2 || st.Files < 3 {
		t.Errorf("stats %+v, want 2 pods removed", st)
	}
	// The held pod keeps working; the removed one is made anew on demand.
	writeFor(t, s, live, 1)
	writeFor(t, s, released, 1)
	if got := readSeqs(t, LogPath(root, released)); len(got) != 1 {
		t.Errorf("recreated pod has %d records, want 1", len(got))
	}
	// Once the other shim lets go, its pod's clock starts.
	other.Release(elsewhere)
	clk.t = clk.t.Add(25 * time.Hour)
	age(t, dirOf(elsewhere), clk.t.Add(-25*time.Hour))
	if _, err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if exists(dirOf(elsewhere)) {
		t.Error("pod released by another shim a retention ago was kept")
	}
	if !exists(dirOf(live)) {
		t.Error("held pod removed")
	}
}

// TestHoldRestartsRetention: a pod that comes back (a container restarted
// in it) is no longer released; Hold takes the directory's lock at once.
func TestHoldRestartsRetention(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log")
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	clk := &retentionClock{t0}
	s := NewFileSink(root, 1<<20, 3).Bound(time.Hour, 0, clk.now)
	a := podAttr("web")
	s.Hold(a)
	writeFor(t, s, a, 1)
	s.Release(a)
	age(t, s.podDir(a), t0)
	s.Hold(a) // restarted, no record yet
	if exists(filepath.Join(s.podDir(a), releasedMarker)) {
		t.Error("marker kept for a pod that is alive again")
	}
	clk.t = t0.Add(48 * time.Hour)
	sweeper := NewFileSink(root, 1<<20, 3).Bound(time.Hour, 0, clk.now)
	if _, err := sweeper.Sweep(); err != nil || !exists(s.podDir(a)) {
		t.Errorf("a held pod with no new record was swept (%v)", err)
	}
}

// TestSweepTotalCap: over max_total_bytes, rotated files go oldest first,
// then gone pods; live files of held pods stay.
func TestSweepTotalCap(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log")
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	clk := &retentionClock{t0}
	r := rec("c", 1)
	line, _ := json.Marshal(r)
	per := int64(4 * (len(line) + 1)) // four lines per file
	s := NewFileSink(root, per, 3)
	old, mid, live := podAttr("old"), podAttr("mid"), podAttr("live")
	s.Hold(live)
	for i, a := range []denial.Attribution{old, mid, live} {
		writeFor(t, s, a, 10) // 3 files each: .log.2, .log.1, .log
		when := t0.Add(time.Duration(i) * time.Hour)
		age(t, s.podDir(a), when)
		// Rotated copies are older than their live file.
		_ = os.Chtimes(RotatedName(LogPath(root, a), 2), when.Add(-2*time.Minute), when.Add(-2*time.Minute))
		_ = os.Chtimes(RotatedName(LogPath(root, a), 1), when.Add(-time.Minute), when.Add(-time.Minute))
	}
	s.Release(old)
	s.Release(mid)
	total := duSink(t, root)
	// Room for everything but three rotated files.
	s.Bound(0, total-2*per-1, clk.now)
	st, err := s.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	gone := []string{RotatedName(LogPath(root, old), 2), RotatedName(LogPath(root, old), 1), RotatedName(LogPath(root, mid), 2)}
	for _, p := range gone {
		if exists(p) {
			t.Errorf("%s kept: the oldest rotated files go first", strings.TrimPrefix(p, root))
		}
	}
	if !exists(RotatedName(LogPath(root, mid), 1)) || !exists(LogPath(root, old)) || !exists(RotatedName(LogPath(root, live), 2)) {
		t.Error("removed more than needed")
	}
	if st.Files != 3 || st.Total > total-2*per-1 || duSink(t, root) != st.Total {
		t.Errorf("stats %+v (du %d)", st, duSink(t, root))
	}
	// A cap below what the live files of the held pod need: everything
	// else goes, the held pod's live file stays, and the sweep says so.
	s.Bound(0, 1, clk.now)
	if _, err := s.Sweep(); err == nil || !strings.Contains(err.Error(), "live files") {
		t.Errorf("err = %v, want one naming live files", err)
	}
	if exists(s.podDir(old)) || exists(s.podDir(mid)) || !exists(LogPath(root, live)) {
		t.Error("gone pods kept or live file removed")
	}
}

func duSink(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func closeFd(fd int) error {
	if fd < 0 {
		return nil
	}
	return os.NewFile(uintptr(fd), "").Close()
}

// TestAgentSweepsAtStartAndReleasesPods: a shim's agent sweeps pods long
// gone when it starts, and marks a pod released when its last registered
// container goes.
func TestAgentSweepsAtStartAndReleasesPods(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = "1h"
	stale := NewFileSink(cfg.Dir, cfg.MaxFileBytes, cfg.MaxFiles)
	writeFor(t, stale, podAttr("stale"), 1)
	_ = stale.Close()
	staleDir := stale.podDir(podAttr("stale"))
	age(t, staleDir, time.Now().Add(-2*time.Hour))

	a := newTestAgent(t, cfg) // default sinks: file and log
	waitFor(t, "start-up sweep", func() bool { return !exists(staleDir) })

	attr := podAttr("web")
	if err := a.Register("c1", attr, denial.ModeEnforce, "p"); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	a.serve(a.registration("c1"), src)
	src.ch <- note(1, 100, 165, "mount")
	dir := filepath.Join(cfg.Dir, PodDir(attr.Namespace, attr.Pod, attr.PodUID))
	waitFor(t, "record", func() bool { return exists(LogPath(cfg.Dir, attr)) })
	if exists(filepath.Join(dir, releasedMarker)) {
		t.Fatal("pod marked released while its container is registered")
	}
	a.Unregister("c1")
	waitFor(t, "released marker", func() bool { return exists(filepath.Join(dir, releasedMarker)) })
}
