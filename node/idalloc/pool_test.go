package idalloc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockade-dev/stockade/profiles/userns"
)

func TestLoadPool(t *testing.T) {
	dir := t.TempDir()
	uid, gid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")

	// Missing files: default.
	p, err := LoadPool("", uid, gid)
	if err != nil || p != userns.DefaultPool() {
		t.Fatalf("missing files: %+v, %v", p, err)
	}

	for _, f := range []string{uid, gid} {
		if err := os.WriteFile(f, []byte("stockade:1000000:655360\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err = LoadPool("", uid, gid)
	if err != nil || p.Start != 1000000 || p.Ranges() != 10 || p.Source != uid+":1 entry for stockade" {
		t.Fatalf("from files: %+v, %v", p, err)
	}

	if err := os.WriteFile(gid, []byte("stockade:oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPool("", uid, gid); err == nil || !strings.Contains(err.Error(), gid+":1") {
		t.Fatalf("malformed subgid: %v", err)
	}
}
