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
