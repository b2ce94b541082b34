package denials

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stockade-dev/stockade/internal/roottest"
	"golang.org/x/sys/unix"
)

// TestFileSinkFullTmpfs fills a real 8 KiB tmpfs (the filesystem of the
// integration test that once read half a record) and checks after every
// record that the file holds whole lines only, and that ENOSPC leaves the
// file exactly as it was.
func TestFileSinkFullTmpfs(t *testing.T) {
	roottest.Require(t, "mounts a tmpfs")
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8k"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s := NewFileSink(filepath.Join(dir, "log"), 1<<20, 2)
	defer s.Close()
	r := rec("c1", 1)
	path := LogPath(filepath.Join(dir, "log"), r.attribution())
	var written, failed int
	for i := 0; i < 200; i++ {
		r.Seq = uint64(i)
		before, _ := os.ReadFile(path)
		err := writeRec(t, s, r)
		after, rerr := os.ReadFile(path)
		if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			t.Fatal(rerr)
		}
		if len(after) > 0 && after[len(after)-1] != '\n' {
			t.Fatalf("record %d: file ends in a partial line: %q", i, after[max(len(after)-60, 0):])
		}
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("record %d: %v, want ENOSPC", i, err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("record %d: a failed write changed the file (%d -> %d bytes)", i, len(before), len(after))
			}
			failed++
			continue
		}
		written++
	}
	if written == 0 || failed == 0 {
		t.Fatalf("written %d, failed %d: the disk was never full or never usable", written, failed)
	}
	t.Logf("%d records fit on 8 KiB, %d refused whole", written, failed)
}
