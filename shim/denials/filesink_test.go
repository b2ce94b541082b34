package denials

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writeRec(t *testing.T, s Sink, r *Record) error {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return s.Write(r, append(b, '\n'))
}

func readSeqs(t *testing.T, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r.Seq)
	}
	return out
}

func TestFileSinkLayoutAndModes(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log")
	s := NewFileSink(root, 1<<20, 3)
	r := rec("c1", 1)
	r.Namespace, r.Pod, r.PodUID, r.Container = "team-a", "web-0", "uid-1", "app"
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatal("sink root created before the first record")
	}
	if err := writeRec(t, s, r); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "team-a_web-0_uid-1", "app.log")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&^0o640 != 0 {
		t.Errorf("file mode %v, want at most 0640", st.Mode().Perm())
	}
	dst, _ := os.Stat(filepath.Dir(path))
	if dst.Mode().Perm()&^0o750 != 0 {
		t.Errorf("dir mode %v, want at most 0750", dst.Mode().Perm())
	}
	// Release closes; the next write reopens and appends.
	s.Release(r.attribution())
	if err := writeRec(t, s, r); err != nil {
		t.Fatal(err)
	}
	if got := readSeqs(t, path); len(got) != 2 {
		t.Errorf("%d lines after reopen, want 2", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFileSinkRotation(t *testing.T) {
	root := t.TempDir()
	r := rec("c1", 1)
	r.Seq = 10 // the longest line written
	line, _ := json.Marshal(r)
	// Room for three lines per file.
	s := NewFileSink(root, int64(3*(len(line)+1)+1), 3)
	for i := 1; i <= 10; i++ {
		r.Seq = uint64(i)
		if err := writeRec(t, s, r); err != nil {
			t.Fatal(err)
		}
	}
	live := LogPath(root, r.attribution())
	// 10 lines, 3 per file, 3 files kept: 1-3 were rotated away.
	want := map[string][]uint64{
		RotatedName(live, 2): {4, 5, 6},
		RotatedName(live, 1): {7, 8, 9},
		live:                 {10},
	}
	for p, w := range want {
		if got := readSeqs(t, p); !equalU(got, w) {
			t.Errorf("%s = %v, want %v", filepath.Base(p), got, w)
		}
	}
	if _, err := os.Stat(RotatedName(live, 3)); !os.IsNotExist(err) {
		t.Errorf("more than max_files files kept")
	}
}

func TestFileSinkSingleFileTruncates(t *testing.T) {
	root := t.TempDir()
	r := rec("c1", 1)
	r.Seq = 9
	line, _ := json.Marshal(r)
	s := NewFileSink(root, int64(2*(len(line)+1)), 1)
	for i := 1; i <= 5; i++ {
		r.Seq = uint64(i)
		if err := writeRec(t, s, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := readSeqs(t, LogPath(root, r.attribution())); !equalU(got, []uint64{5}) {
		t.Errorf("got %v, want [5]", got)
	}
}

func equalU(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fullWriter models a small disk holding one file: limit bytes in all. A
// write without a reservation stores what fits and then fails like a full
// disk, leaving a partial line behind, as write(2) does. After every
// operation it checks what a concurrent reader could see at that instant.
type fullWriter struct {
	buf       []byte
	limit     int
	reserved  int // bytes allocated past len(buf)
	noAlloc   bool
	truncated bool
	// seen is the first state a reader could have seen that ends in a
	// partial line.
	seen string
}

func (w *fullWriter) observe() {
	if len(w.buf) > 0 && w.buf[len(w.buf)-1] != '\n' && w.seen == "" {
		w.seen = string(w.buf)
	}
}

func (w *fullWriter) Allocate(off, n int64) error {
	if w.noAlloc {
		return errAllocateUnsupported
	}
	if int(off+n) > w.limit {
		return &os.PathError{Op: "fallocate", Path: "x", Err: syscall.ENOSPC}
	}
	w.reserved = max(w.reserved, int(off+n)-len(w.buf))
	return nil
}

func (w *fullWriter) Write(p []byte) (int, error) {
	defer w.observe()
	room := w.limit - len(w.buf)
	if room >= len(p) {
		w.buf = append(w.buf, p...)
		w.reserved = max(w.reserved-len(p), 0)
		return len(p), nil
	}
	w.buf = append(w.buf, p[:max(room, 0)]...)
	return max(room, 0), &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
}

func (w *fullWriter) Truncate(n int64) error {
	w.buf = w.buf[:n]
	w.truncated = true
	w.observe()
	return nil
}
func (w *fullWriter) Close() error { return nil }

// TestFileSinkENOSPCNoPartialLine: on a full disk the sink writes whole
// lines or nothing, so no reader ever sees half a record (issue 15: a
// reader of the live file caught a partial gap record between the short
// write and the truncate that cut it off).
func TestFileSinkENOSPCNoPartialLine(t *testing.T) {
	w := &fullWriter{limit: 1000}
	s := NewFileSink(t.TempDir(), 1<<20, 2)
	s.open = func(string) (logWriter, int64, error) { return w, 0, nil }
	r := rec("c1", 1)
	var err error
	lines := 0
	for i := 0; i < 50 && err == nil; i++ {
		if err = writeRec(t, s, r); err == nil {
			lines++
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if lines == 0 {
		t.Fatal("nothing fit: the test did not exercise a partly full disk")
	}
	if w.seen != "" {
		t.Errorf("a reader could see a partial line: %q", w.seen[max(len(w.seen)-80, 0):])
	}
	if w.truncated {
		t.Error("the sink wrote into space it had not reserved and had to cut the line off")
	}
	// A later record that fits (a gap record is short) still goes in whole.
	w.limit = len(w.buf) + 400
	g := gapRecord(r, 7, r.Time)
	if err := writeRec(t, s, g); err != nil {
		t.Fatalf("short record after ENOSPC: %v", err)
	}
	if got := strings.Count(string(w.buf), "\n"); got != lines+1 {
		t.Errorf("%d lines, want %d", got, lines+1)
	}
}

// Where the filesystem has no fallocate, a partial line is cut off again.
func TestFileSinkENOSPCWithoutFallocate(t *testing.T) {
	w := &fullWriter{limit: 1000, noAlloc: true}
	s := NewFileSink(t.TempDir(), 1<<20, 2)
	s.open = func(string) (logWriter, int64, error) { return w, 0, nil }
	r := rec("c1", 1)
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		err = writeRec(t, s, r)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if !w.truncated || len(w.buf) > 0 && !strings.HasSuffix(string(w.buf), "\n") {
		t.Errorf("partial line left behind: %q", w.buf)
	}
}

// With the sink's directory impossible to create, records become counts;
// once it works, one gap record says how many were lost.
func TestFileSinkDirFailureThroughPipeline(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "blocked")
	if err := os.WriteFile(root, nil, 0o600); err != nil { // a file where the dir should be
		t.Fatal(err)
	}
	var st counters
	fs := NewFileSink(root, 1<<20, 2)
	p := newPipeline(context.Background(), 16, []Sink{fs}, &st)
	p.emit(rec("c1", 2))
	p.emit(rec("c1", 3))
	waitFor(t, "failures", func() bool { return st.sinkErrors.Load() >= 2 })
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	p.emit(rec("c1", 1))
	p.close()
	path := LogPath(root, rec("c1", 1).attribution())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"type":"gap"`) || !strings.Contains(lines[0], `"dropped":5`) {
		t.Errorf("file = %q, want a gap of 5 then the record", lines)
	}
}

func TestOpenLogFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	link := filepath.Join(dir, "c.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openLogFile(link); err == nil {
		t.Error("opened a symlink")
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Error("write followed the symlink")
	}
}
