package idalloc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadProcIDMaps(t *testing.T) {
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(proc, "42", "uid_map"), []byte("0 2147483648 65536\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "42", "gid_map"), []byte("0 2147549184 65536\n"), 0o644)
	u, g, err := ReadProcIDMaps(proc, 42)
	if err != nil || u[0].HostID != 1<<31 || g[0].HostID != 1<<31+65536 {
		t.Fatalf("ReadProcIDMaps = %v %v %v", u, g, err)
	}
	if _, _, err := ReadProcIDMaps(proc, 43); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing pid: %v", err)
	}
	// The real thing parses too.
	if _, _, err := ReadProcIDMaps("/proc", os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
