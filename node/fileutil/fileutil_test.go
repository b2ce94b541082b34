package fileutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WriteFile (durable) and ReplaceFile (volatile) replace alike.
func TestWriteFileReplacesWithPermAndLeavesNoTemp(t *testing.T) {
	for name, write := range map[string]func(string, []byte, os.FileMode) error{"WriteFile": WriteFile, "ReplaceFile": ReplaceFile} {
		t.Run(name, func(t *testing.T) { testReplaces(t, write) })
	}
}

func testReplaces(t *testing.T, write func(string, []byte, os.FileMode) error) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := write(path, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "new" {
		t.Fatalf("content %q, %v", got, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
}

func TestWriteFileFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "p.json")
	if err := WriteFile(path, []byte("x"), 0o644); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file exists after a failed write: %v", err)
	}
}

// A file is from before this boot when its mtime is before btime.
func TestModifiedBeforeBoot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := ReplaceFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if old, err := ModifiedBeforeBoot(path); err != nil || old {
		t.Fatalf("a file written now: ModifiedBeforeBoot = %v, %v; want false", old, err)
	}
	if err := os.Chtimes(path, time.Unix(1000, 0), time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
	if old, err := ModifiedBeforeBoot(path); err != nil || !old {
		t.Fatalf("a file of 1970: ModifiedBeforeBoot = %v, %v; want true", old, err)
	}
	if _, err := ModifiedBeforeBoot(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("ModifiedBeforeBoot of a missing file: no error")
	}
}

func TestIsTemp(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, ".p.json.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !IsTemp(filepath.Base(f.Name())) || IsTemp("p.json") || IsTemp("") {
		t.Error("IsTemp misclassifies")
	}
}

func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := Lock(path, 0o600)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("second Lock returned while the first was held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	u, ok := <-got
	if !ok {
		return
	}
	u()
}

// A holder that unlinks the lock file before releasing it must not leave
// the waiter holding a lock on the deleted inode while a third party locks
// a fresh file at the same path.
func TestLockRetriesAfterHolderUnlinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := Lock(path, 0o600)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- u
	}()
	time.Sleep(50 * time.Millisecond) // let the waiter block on the old inode
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	unlock()
	u, ok := <-got
	if !ok {
		return
	}
	if _, err := os.Stat(path); err != nil {
		u()
		t.Fatalf("waiter holds a lock but %s does not exist: %v", path, err)
	}
	// The path's current file must be the locked one: a fresh Lock blocks.
	third := make(chan struct{})
	go func() {
		if u3, err := Lock(path, 0o600); err == nil {
			u3()
		}
		close(third)
	}()
	select {
	case <-third:
		t.Fatal("a third Lock succeeded while the waiter holds the lock")
	case <-time.After(100 * time.Millisecond):
	}
	u()
	<-third
}
