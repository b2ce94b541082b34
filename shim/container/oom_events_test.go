package container

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOOMKilled(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n", true},
		{"low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n", false},
		{"", false},
	} {
		f := filepath.Join(dir, "memory.events")
		if err := os.WriteFile(f, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := oomKilled(f); got != tc.want {
			t.Errorf("%q: oomKilled = %v, want %v", tc.text, got, tc.want)
		}
	}
	if oomKilled(filepath.Join(dir, "missing")) {
		t.Error("a missing file counts as an OOM kill")
	}
}

func TestEventCount(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cgroup.events")
	if err := os.WriteFile(f, []byte("populated 1\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := eventCount(f, "populated"); err != nil || n != 1 {
		t.Errorf("populated = %d, %v; want 1", n, err)
	}
	if n, err := eventCount(f, "frozen"); err != nil || n != 0 {
		t.Errorf("frozen = %d, %v; want 0", n, err)
	}
	// A key that is only a prefix of another must not match it.
	if _, err := eventCount(f, "popul"); err == nil {
		t.Error("a missing key was found")
	}
}

func TestNotifyOOMNeedsACgroup(t *testing.T) {
	if _, err := notifyOOM(""); err == nil {
		t.Error("no error for a container without a memory cgroup")
	}
}
