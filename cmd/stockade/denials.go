package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/shim/denials"
)

func init() {
	register("denials", "show the syscalls seccomp denied on this node (like kubectl logs)", func(args []string) int {
		return runDenials(args, os.Stdout, os.Stderr, denialsEnv{now: time.Now, poll: 250 * time.Millisecond})
	})
}

// denialsEnv holds what tests replace: the clock, the follow poll interval,
// and a channel that ends following (nil: follow until killed).
type denialsEnv struct {
	now  func() time.Time
	poll time.Duration
	stop <-chan struct{}
}

// denialsQuery is what the user asked for.
type denialsQuery struct {
	namespace, pod, container string
	allNamespaces             bool
	since                     time.Time
	json                      bool
}

func (q *denialsQuery) match(r *denials.Record) bool {
	switch {
	case !q.allNamespaces && r.Namespace != q.namespace,
		q.pod != "" && r.Pod != q.pod,
		q.container != "" && r.Container != q.container,
		!q.since.IsZero() && r.Time.Before(q.since):
		return false
	}
	return true
}

// denialsCmd is one run: the query, the output, and counts for the summary.
type denialsCmd struct {
	q       denialsQuery
	root    string
	stderr  io.Writer
	out     io.Writer
	tw      *tabwriter.Writer
	printed int
	// otherPods counts pods hidden only by the namespace filter, to hint -A.
	otherPods int
}

// runDenials prints the records under the sink directory that match the
// flags. It exits 0 (also when nothing matches, which stderr explains), 1
// when the config or the directory cannot be read, 2 on usage errors.
func runDenials(args []string, stdout, stderr io.Writer, env denialsEnv) int {
	flags := flag.NewFlagSet("stockade denials", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		q      denialsQuery
		follow bool
		since  time.Duration
		format string
	)
	flags.BoolVar(&follow, "f", false, "follow: keep printing new records (across rotation)")
	flags.BoolVar(&follow, "follow", false, "same as -f")
	flags.StringVar(&q.namespace, "n", "default", "Kubernetes `namespace` (containerd namespace for non-Kubernetes containers)")
	flags.StringVar(&q.namespace, "namespace", "default", "same as -n")
	flags.BoolVar(&q.allNamespaces, "A", false, "all namespaces")
	flags.BoolVar(&q.allNamespaces, "all-namespaces", false, "same as -A")
	flags.StringVar(&q.pod, "pod", "", "only this pod `name`")
	flags.StringVar(&q.container, "container", "", "only this container `name`")
	flags.DurationVar(&since, "since", 0, "only records newer than this `duration` (e.g. 10m)")
	flags.StringVar(&format, "o", "table", "output format: table or json (JSON lines)")
	flags.StringVar(&format, "output", "table", "same as -o")
	cfgPath := flags.String("config", "", "node config `file` (default "+config.DefaultPath+" if it exists)")
	dir := flags.String("dir", "", "sink `directory` (default: denials.dir of the node config)")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: stockade denials [-f] [-n NS | -A] [--pod NAME] [--container NAME] [--since 10m] [-o table|json] [--config FILE] [--dir DIR]\n\n"+
			"Prints the syscalls that seccomp profiles denied (or, in complain mode,\n"+
			"would have denied) on this node, read from the denial sink.\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "stockade denials: unexpected argument %q\n", flags.Arg(0))
		return 2
	}
	switch format {
	case "table":
	case "json":
		q.json = true
	default:
		fmt.Fprintf(stderr, "stockade denials: -o %q: want table or json\n", format)
		return 2
	}
	if since < 0 {
		fmt.Fprintf(stderr, "stockade denials: --since %s: must not be negative\n", since)
		return 2
	}
	if since > 0 {
		q.since = env.now().Add(-since)
	}
	root := *dir
	if root == "" {
		cfg, err := config.Load(*cfgPath, *cfgPath != "")
		if err != nil {
			fmt.Fprintf(stderr, "stockade denials: %v\n", err)
			return 1
		}
		root = cfg.Denials.Dir
	}
	c := &denialsCmd{q: q, root: root, stderr: stderr, out: stdout}
	if !q.json {
		c.tw = tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	}
	if follow {
		return c.follow(env)
	}
	logs, otherPods, err := listLogs(root, &q)
	c.otherPods = otherPods
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "stockade denials: no records: %s does not exist (it is created when a container on this node first has a syscall denied)\n", root)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "stockade denials: %v\n", err)
		return 1
	}
	for _, l := range logs {
		// Open the live file before listing its rotated copies: a rotation
		// in between then shows up as our file among the copies, where
		// catchUp stops, instead of as a copy nobody reads.
		t, err := openTail(l.live)
		var until uint64
		if err == nil {
			until = t.ino
		}
		c.catchUp(l.live, 0, until)
		if t != nil {
			t.read(c, true)
			_ = t.f.Close()
		}
	}
	c.flush()
	c.summary()
	return 0
}

// summary explains an empty result on stderr, where it does not disturb a
// pipe reading the records.
func (c *denialsCmd) summary() {
	if c.printed > 0 {
		return
	}
	scope := fmt.Sprintf("namespace %q", c.q.namespace)
	if c.q.allNamespaces {
		scope = "any namespace"
	}
	fmt.Fprintf(c.stderr, "stockade denials: no denial records in %s match (%s)\n", c.root, scope)
	if c.otherPods > 0 && !c.q.allNamespaces {
		fmt.Fprintf(c.stderr, "stockade denials: %d pods in other namespaces have records; use -A to see them\n", c.otherPods)
	}
}

// containerLog is one container's live file and its rotated copies.
type containerLog struct {
	live string
}

// rotated lists the rotated copies oldest first (.log.N … .log.1).
func (l containerLog) rotated() []string {
	matches, _ := filepath.Glob(l.live + ".*")
	type rf struct {
		n    int
		path string
	}
	var rs []rf
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, l.live+"."))
		if err == nil && n > 0 {
			rs = append(rs, rf{n, m})
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n })
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.path
	}
	return out
}

// listLogs finds the container logs under root, skipping pod directories and
// files whose (reversibly escaped) names cannot match q; records are still
// filtered one by one, the names are only a shortcut. Cut names (marked by
// '~', which EscapeName never emits otherwise) are always read. otherPods
// counts pod directories skipped only for their namespace.
func listLogs(root string, q *denialsQuery) (logs []containerLog, otherPods int, err error) {
	pods, err := os.ReadDir(root)
	if err != nil {
		return nil, 0, err
	}
	for _, p := range pods {
		if !p.IsDir() {
			continue
		}
		if ns, pod, _, err := denials.ParsePodDir(p.Name()); err == nil && !strings.Contains(p.Name(), "~") {
			if q.pod != "" && pod != q.pod {
				continue
			}
			if !q.allNamespaces && ns != q.namespace {
				otherPods++
				continue
			}
		}
		files, err := os.ReadDir(filepath.Join(root, p.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			name, ok := strings.CutSuffix(f.Name(), ".log")
			if !ok || f.IsDir() {
				continue
			}
			if ctr, err := denials.UnescapeName(name); err == nil && !strings.Contains(name, "~") && q.container != "" && ctr != q.container {
				continue
			}
			logs = append(logs, containerLog{live: filepath.Join(root, p.Name(), f.Name())})
		}
	}
	return logs, otherPods, nil
}

// readFile prints the matching records of a whole file. A final line
// without a newline is still tried: the writer never leaves one, but a
// crash or a full disk might.
func (c *denialsCmd) readFile(path string) {
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(c.stderr, "stockade denials: %v\n", err)
		}
		return
	}
	defer f.Close()
	t := &tailer{path: path, f: f}
	t.read(c, true)
}

// line handles one line of a file: parse, filter, print.
func (c *denialsCmd) line(path string, n int, b []byte) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return
	}
	var r denials.Record
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(c.stderr, "stockade denials: %s:%d: skipping malformed record: %v\n", path, n, err)
		return
	}
	if !c.q.match(&r) {
		return
	}
	c.printed++
	if c.q.json {
		_, _ = c.out.Write(append(b, '\n'))
		return
	}
	if c.printed == 1 {
		fmt.Fprintln(c.tw, "TIME\tNAMESPACE\tPOD\tCONTAINER\tSOURCE\tWHAT\tACTION\tCOUNT\tPID\tCOMM")
	}
	source, what, action, count := denials.SourceSeccomp, r.Syscall, r.Action, r.Count
	if r.Source == denials.SourceAppArmor {
		// What AppArmor mediated: the operation and the file or
		// capability it named ("mknod /sys/fs/bpf/x", "capable net_admin").
		source, what = r.Source, strings.TrimSpace(r.Operation+" "+r.Path+r.Capability)
	}
	if r.Type == denials.TypeGap {
		what, action, count = "-", "lost", r.Dropped
	}
	pid, comm := "-", orDash(r.Comm)
	if r.Pid > 0 {
		pid = strconv.Itoa(r.Pid)
	}
	if r.Overflow {
		// An aggregate of calls by processes it does not name: say so
		// rather than leave a blank that reads like one unknown process.
		pid, comm = "*", "(overflow)"
	}
	// Every string comes from the record, and the record from a workload
	// or a name it chose: escape them all (termSafe), not just comm.
	fmt.Fprintf(c.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
		r.Time.Local().Format("2006-01-02T15:04:05.000Z07:00"), termSafe(r.Namespace), termSafe(r.Pod), termSafe(r.Container),
		source, termSafe(what), termSafe(action), count, pid, termSafe(comm))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *denialsCmd) flush() {
	if c.tw != nil {
		_ = c.tw.Flush()
	}
}

// tailer reads one file by handle: it keeps reading the same inode after the
// sink renames it away, so a rotation never loses the tail of a file.
type tailer struct {
	path    string
	f       *os.File
	ino     uint64
	lineNo  int
	partial []byte
}

// read prints every complete line from the current offset to EOF. With
// final set (the file will not grow) a trailing partial line counts too.
func (t *tailer) read(c *denialsCmd, final bool) {
	br := bufio.NewReaderSize(t.f, 64<<10)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			t.lineNo++
			c.line(t.path, t.lineNo, append(t.partial, b[:len(b)-1]...))
			t.partial = nil
			continue
		}
		t.partial = append(t.partial, b...)
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(c.stderr, "stockade denials: %s: %v\n", t.path, err)
		}
		break
	}
	if final && len(t.partial) > 0 {
		t.lineNo++
		c.line(t.path, t.lineNo, t.partial)
		t.partial = nil
	}
}

// follow prints what exists, then polls for new lines, new containers and
// rotations until env.stop closes. Polling (not inotify) keeps it simple
// and works on every filesystem; a record appears within one interval.
func (c *denialsCmd) follow(env denialsEnv) int {
	tails := map[string]*tailer{}
	defer func() {
		for _, t := range tails {
			if t.f != nil {
				_ = t.f.Close()
			}
		}
	}()
	tick := time.NewTicker(env.poll)
	defer tick.Stop()
	waiting := false
	for {
		logs, _, err := listLogs(c.root, &c.q)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !waiting {
				fmt.Fprintf(c.stderr, "stockade denials: %s does not exist yet; waiting for records\n", c.root)
				waiting = true
			}
		case err != nil:
			fmt.Fprintf(c.stderr, "stockade denials: %v\n", err)
			return 1
		}
		for _, l := range logs {
			if tails[l.live] != nil {
				continue
			}
			t, err := openTail(l.live)
			if err != nil {
				continue // rotated away just now; the next round finds it
			}
			c.catchUp(l.live, 0, t.ino)
			tails[l.live] = t
		}
		for _, t := range tails {
			c.advance(t)
		}
		c.flush()
		select {
		case <-env.stop:
			return 0
		case <-tick.C:
		}
	}
}

func openTail(path string) (*tailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &tailer{path: path, f: f, ino: inode(fi)}, nil
}

// advance prints t's new lines and follows a rotation: the held file (now
// .log.1) is read to its end, the new live file is opened, the copies
// rotated in between are read whole, and the new file is tailed from its
// start.
func (c *denialsCmd) advance(t *tailer) {
	if t.f != nil {
		t.read(c, false)
		fi, err := os.Stat(t.path)
		if err != nil || inode(fi) == t.ino {
			return // unchanged, or rotated and not yet recreated
		}
		t.read(c, true)
		_ = t.f.Close()
		t.f = nil // t.ino stays: catch-up starts after it
	}
	nt, err := openTail(t.path)
	if err != nil {
		return // gone again already; retried next round
	}
	if !c.catchUp(t.path, t.ino, nt.ino) {
		fmt.Fprintf(c.stderr, "stockade denials: %s rotated faster than it was read; some records may be missing\n", t.path)
	}
	*t = *nt
	t.read(c, false)
}

// catchUp reads, oldest first, the rotated copies of live that are newer
// than the file with inode after (0: from the oldest) and older than the
// file with inode until (the one about to be tailed). It reports false if
// after was no longer among the copies: it was rotated out of existence,
// and with it possibly copies nobody read.
func (c *denialsCmd) catchUp(live string, after, until uint64) bool {
	copies := containerLog{live: live}.rotated()
	inos := make([]uint64, len(copies))
	start, found := 0, after == 0
	for i, p := range copies {
		if fi, err := os.Stat(p); err == nil {
			inos[i] = inode(fi)
		}
		if after != 0 && inos[i] == after {
			start, found = i+1, true
		}
	}
	for i := start; i < len(copies); i++ {
		if until != 0 && inos[i] == until {
			break
		}
		c.readFile(copies[i])
	}
	return found
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
