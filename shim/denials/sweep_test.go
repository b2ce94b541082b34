package denials

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A socket file nothing is bound to any more, older than staleAge, is
// removed; a live agent's socket, the caller's own, a fresh one and other
// files stay.
func TestSweepStaleSockets(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	old := time.Now().Add(-2 * staleAge)

	// A shim killed with SIGKILL: its socket file outlives the socket.
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path("dead.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	fresh, err := net.ListenUnix("unix", &net.UnixAddr{Name: path("fresh.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	fresh.SetUnlinkOnClose(false)
	fresh.Close()
	live, err := net.ListenUnix("unix", &net.UnixAddr{Name: path("live.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if err := os.WriteFile(path("notes.sock"), nil, 0o600); err != nil { // not a socket
		t.Fatal(err)
	}
	own, err := net.ListenUnix("unix", &net.UnixAddr{Name: path("own.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	for _, n := range []string{"dead.sock", "live.sock", "notes.sock", "own.sock"} {
		if err := os.Chtimes(path(n), old, old); err != nil {
			t.Fatal(err)
		}
	}

	removed, err := sweepStale(dir, path("own.sock"), "/proc/net/unix", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if removed != 1 {
		t.Errorf("removed %d files, want 1 (dead.sock)", removed)
	}
	if _, err := os.Lstat(path("dead.sock")); !os.IsNotExist(err) {
		t.Errorf("stale socket of a gone shim survived: %v", err)
	}
	for _, n := range []string{"live.sock", "fresh.sock", "notes.sock", "own.sock"} {
		if _, err := os.Lstat(path(n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
}

// Read from another network namespace the table lists no socket of ours:
// nothing is swept, since every live agent would look gone.
func TestSweepRefusesAForeignTable(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, "dead.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: dead, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	old := time.Now().Add(-2 * staleAge)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "unix")
	if err := os.WriteFile(empty, []byte("Num       RefCount Protocol Flags    Type St Inode Path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sweepStale(dir, filepath.Join(dir, "own.sock"), empty, time.Now()); err == nil {
		t.Fatal("sweep with a table that lacks the agent's own socket: no error")
	}
	if _, err := os.Lstat(dead); err != nil {
		t.Fatalf("swept with a foreign table: %v", err)
	}
}

func TestBoundPaths(t *testing.T) {
	table := []byte(`Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 2305 /run/stockade/denials/a.sock
0000000000000000: 00000002 00000000 00010000 0001 01 2306 @abstract
0000000000000000: 00000003 00000000 00000000 0001 03 2307
`)
	got := boundPaths(table)
	if len(got) != 1 || !got["/run/stockade/denials/a.sock"] {
		t.Fatalf("boundPaths = %v", got)
	}
}
