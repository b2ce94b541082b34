package denials

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleAge is how old a socket file with nothing bound to it must be before
// a sweep removes it. A live agent binds and listens within microseconds of
// creating its file; the margin keeps a sweep from racing one.
const staleAge = time.Minute

// sweepStale removes the agent socket files in dir that no socket is bound
// to any more, except keep (the caller's own, bound), and returns how many
// it removed. A shim killed
// with SIGKILL never unlinks its socket, and without this every such kill
// would leave one file in the directory for good. Whether a path is bound
// comes from the kernel's table of unix sockets (procNetUnix, /proc/net/unix
// of the host network namespace, where shims run), not from connecting to
// it, which a live agent would take for a hand-over.
func sweepStale(dir, keep, procNetUnix string, now time.Time) (int, error) {
	table, err := os.ReadFile(procNetUnix)
	if err != nil {
		return 0, err
	}
	bound := boundPaths(table)
	if !bound[keep] {
		// The table is another network namespace's: every path would look
		// unbound, live agents' too.
		return 0, fmt.Errorf("%s does not list this agent's socket %s; not sweeping", procNetUnix, keep)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if p == keep || !strings.HasSuffix(e.Name(), ".sock") || bound[p] {
			continue
		}
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&os.ModeSocket == 0 || now.Sub(st.ModTime()) < staleAge {
			continue
		}
		if os.Remove(p) == nil {
			removed++
		}
	}
	return removed, nil
}

// boundPaths parses /proc/net/unix ("Num RefCount Protocol Flags Type St
// Inode Path") into the set of filesystem paths sockets are bound to.
func boundPaths(table []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(table))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 8 && strings.HasPrefix(f[7], "/") {
			out[f[7]] = true
		}
	}
	return out
}
