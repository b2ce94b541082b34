// Package sink follows a node's denial sink (the per-pod JSON-lines files
// the shims write under denials.dir) for the node agent: every complete
// line is read once, in order per file, across rotation, and the read
// position is persisted so that a restarted agent neither reads a line
// again nor misses one.
//
// Files are followed by identity (device and inode), not by name: the
// shims rotate by renaming <container>.log to .log.1, .log.1 to .log.2 and
// so on, which keeps the inode, so a file's offset stays valid whatever it
// is called now. A file that is gone (rotated out, or its pod directory
// removed by retention) is forgotten.
package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/stockade-dev/stockade/node/fileutil"
)

// Record is what the agent reads of one sink line. The shims write them
// (shim/denials.Record is the writer's type, the README's "Reading
// denials" the contract); the agent decodes only the fields it uses and
// ignores the rest, so a newer shim adding fields breaks nothing.
type Record struct {
	Type        string    `json:"type,omitempty"` // "" or TypeGap
	Time        time.Time `json:"time"`
	Node        string    `json:"node"`
	Namespace   string    `json:"namespace"`
	Pod         string    `json:"pod"`
	PodUID      string    `json:"pod_uid"`
	Container   string    `json:"container"`
	ContainerID string    `json:"container_id"`
	Syscall     string    `json:"syscall,omitempty"`
	Action      string    `json:"action,omitempty"` // ActionDenied or ActionAllowed
	Errno       string    `json:"errno,omitempty"`
	Mode        string    `json:"mode,omitempty"`
	Profile     string    `json:"profile,omitempty"`
	Count       uint64    `json:"count,omitempty"`
	Dropped     uint64    `json:"dropped,omitempty"`
}

// Values of Record fields, as the shims write them.
const (
	TypeGap       = "gap"
	ActionDenied  = "denied"
	ActionAllowed = "allowed"
)

// maxLine bounds one record line. The shim cuts every workload-controlled
// field at 1 KiB, so a real record is a few KiB at most; a longer "line" is
// damage, and skipping it keeps a corrupt file from holding memory.
const maxLine = 256 << 10

// chunk is how much of a file one read takes.
const chunk = 64 << 10

// Handler receives what the tailer reads.
type Handler interface {
	// Record is called for every well-formed record.
	Record(r *Record)
	// BadLine is called for a line that is not a record (a crash cut it
	// short, the disk damaged it, or it is too long); reason is a short
	// word fit for a metric label, err says what was wrong.
	BadLine(path string, reason string, err error)
	// PodGone is called once when a pod's directory is gone (the shims'
	// retention removes it a while after the pod), with every namespace
	// and pod name its records carried since the tailer started.
	PodGone(namespace, pod string)
}

// Tailer follows the sink under Dir. It is not safe for concurrent use:
// one goroutine calls Poll.
type Tailer struct {
	// Dir is the sink's root (denials.dir of the node config).
	Dir string
	// StatePath is where read positions are persisted ("" keeps them in
	// memory only, for tests).
	StatePath string

	files  map[fileID]*fileState
	loaded bool
	// pods maps a pod directory to the (namespace, pod) of the records
	// read from it.
	pods map[string]map[[2]string]bool
}

// fileID is a file's identity across renames.
type fileID struct{ Dev, Ino uint64 }

func (id fileID) String() string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

// fileState is how far a file has been read.
type fileState struct {
	Path   string `json:"path"` // where it was last seen (informational)
	Offset int64  `json:"offset"`
	// Skip is set inside an over-long line: the rest of it, up to its
	// newline, is dropped.
	Skip bool `json:"skip,omitempty"`
}

// state is the persisted form.
type state struct {
	Files map[string]*fileState `json:"files"`
}

// Poll reads every complete line added to the sink since the last Poll
// (or, for the first Poll of a fresh state, everything there is), hands it
// to h, then persists the new positions. It returns the first error that
// stopped it from reading the sink or saving its state; a file it cannot
// read is skipped this time and reported in the error, the others are
// still read.
func (t *Tailer) Poll(h Handler) error {
	if err := t.load(); err != nil {
		return err
	}
	paths, err := t.list()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no denial yet on this node: the shims create the directory
	}
	if err != nil {
		return fmt.Errorf("denial sink %s: %w", t.Dir, err)
	}
	seen := make(map[fileID]bool, len(paths))
	var errs []error
	for _, p := range paths {
		id, err := t.readFile(p, h)
		if errors.Is(err, fs.ErrNotExist) {
			continue // rotated out or removed since the listing
		}
		if err != nil {
			errs = append(errs, err)
		}
		if id != (fileID{}) {
			seen[id] = true
		}
	}
	for id := range t.files {
		if !seen[id] {
			delete(t.files, id)
		}
	}
	for dir, names := range t.pods {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			for n := range names {
				h.PodGone(n[0], n[1])
			}
			delete(t.pods, dir)
		}
	}
	if err := t.save(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// list returns the sink's log files, live and rotated, oldest rotation
// first within a container so that records come out in order when a file
// was rotated between two polls.
func (t *Tailer) list() ([]string, error) {
	pods, err := os.ReadDir(t.Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pods {
		if !p.IsDir() {
			continue
		}
		dir := filepath.Join(t.Dir, p.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			continue // removed by retention since the listing
		}
		var logs []string
		for _, f := range files {
			if !f.Type().IsRegular() || strings.HasPrefix(f.Name(), ".") || !strings.Contains(f.Name(), ".log") {
				continue
			}
			logs = append(logs, f.Name())
		}
		sort.Slice(logs, func(i, j int) bool { return rotationOrder(logs[i]) < rotationOrder(logs[j]) })
		for _, l := range logs {
			out = append(out, filepath.Join(dir, l))
		}
	}
	return out, nil
}

// rotationOrder sorts <c>.log.N before <c>.log.M for N > M, and the live
// <c>.log last; names of different containers sort by name.
func rotationOrder(name string) string {
	base, n, ok := strings.Cut(name, ".log")
	if !ok {
		return name
	}
	n = strings.TrimPrefix(n, ".")
	if n == "" {
		return base + "\x00" + "zzzzzzzzzz"
	}
	// Fewer digits is a smaller N; pad so a larger N sorts first.
	return base + "\x00" + fmt.Sprintf("%010d", 9999999999-atoiOr(n, 0))
}

func atoiOr(s string, def int) int {
	v := 0
	for _, c := range s {
		if c < '0' || c > '9' || v > 1e8 {
			return def
		}
		v = v*10 + int(c-'0')
	}
	return v
}

// readFile reads the new complete lines of path.
func (t *Tailer) readFile(path string, h Handler) (fileID, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no inode", path)
	}
	id := fileID{Dev: uint64(st.Dev), Ino: st.Ino}
	pos := t.files[id]
	if pos == nil {
		pos = &fileState{}
		t.files[id] = pos
	}
	pos.Path = path
	if fi.Size() < pos.Offset {
		// Truncated under us (by hand: the shims only append): start over.
		h.BadLine(path, "truncated", fmt.Errorf("%s shrank to %d bytes below the read position %d; reading it again from the start", path, fi.Size(), pos.Offset))
		pos.Offset = 0
	}
	if fi.Size() == pos.Offset {
		return id, nil
	}
	if _, err := f.Seek(pos.Offset, io.SeekStart); err != nil {
		return id, fmt.Errorf("%s: %w", path, err)
	}
	r := bufio.NewReaderSize(f, chunk)
	var (
		pending  []byte // the start of a line longer than the reader's buffer
		consumed int64  // bytes of the current line read so far
	)
	for {
		frag, err := r.ReadSlice('\n')
		consumed += int64(len(frag))
		switch {
		case err == nil: // a complete line
			if !pos.Skip {
				t.line(path, append(pending, frag...), h)
			}
			pos.Skip, pending = false, pending[:0]
			pos.Offset += consumed
			consumed = 0
		case errors.Is(err, bufio.ErrBufferFull):
			if pos.Skip {
				continue
			}
			if int64(len(pending))+int64(len(frag)) > maxLine {
				// Count the line once; skip to its end, also across polls.
				h.BadLine(path, "too_long", fmt.Errorf("%s: a line longer than %d bytes at offset %d", path, maxLine, pos.Offset))
				pos.Skip, pending = true, pending[:0]
				continue
			}
			pending = append(pending, frag...)
		case err == io.EOF:
			// A partial last line stays unread: the writer writes whole
			// lines, so it is being written or was cut by a crash, and the
			// next newline ends it either way. Only a line being skipped
			// moves on, so it is not reported again.
			if !pos.Skip && int64(len(pending))+int64(len(frag)) > maxLine {
				h.BadLine(path, "too_long", fmt.Errorf("%s: a line longer than %d bytes at offset %d", path, maxLine, pos.Offset))
				pos.Skip = true
			}
			if pos.Skip {
				pos.Offset += consumed
			}
			return id, nil
		default:
			return id, fmt.Errorf("%s: %w", path, err)
		}
	}
}

// line decodes one line.
func (t *Tailer) line(path string, line []byte, h Handler) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		h.BadLine(path, "malformed", fmt.Errorf("%s: not a denial record: %w", path, err))
		return
	}
	if r.Type != "" && r.Type != TypeGap {
		h.BadLine(path, "unknown_type", fmt.Errorf("%s: record of unknown type %q", path, r.Type))
		return
	}
	if r.Namespace == "" && r.Pod == "" {
		h.Record(&r)
		return
	}
	if t.pods == nil {
		t.pods = map[string]map[[2]string]bool{}
	}
	dir := filepath.Dir(path)
	if t.pods[dir] == nil {
		t.pods[dir] = map[[2]string]bool{}
	}
	t.pods[dir][[2]string{r.Namespace, r.Pod}] = true
	h.Record(&r)
}

func (t *Tailer) load() error {
	if t.loaded {
		return nil
	}
	t.files = map[fileID]*fileState{}
	t.loaded = true
	if t.StatePath == "" {
		return nil
	}
	data, err := os.ReadFile(t.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("denial sink read positions: %w", err)
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		// A damaged state file must not stop the agent: reading the sink
		// again from the start repeats records (metrics count them twice)
		// but loses none.
		return fmt.Errorf("denial sink read positions %s are damaged, reading the sink from the start: %w", t.StatePath, err)
	}
	for k, v := range s.Files {
		var id fileID
		if _, err := fmt.Sscanf(k, "%d:%d", &id.Dev, &id.Ino); err != nil || v == nil || v.Offset < 0 {
			continue
		}
		t.files[id] = v
	}
	return nil
}

func (t *Tailer) save() error {
	if t.StatePath == "" {
		return nil
	}
	s := state{Files: make(map[string]*fileState, len(t.files))}
	for id, f := range t.files {
		s.Files[id.String()] = f
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(t.StatePath), 0o700); err != nil {
		return fmt.Errorf("denial sink read positions: %w", err)
	}
	if err := fileutil.WriteFile(t.StatePath, data, 0o600); err != nil {
		return fmt.Errorf("denial sink read positions: %w", err)
	}
	return nil
}
