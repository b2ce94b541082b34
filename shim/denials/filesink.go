package denials

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/denial"
)

// Permissions of the sink: root writes, a log-reading group may read, nobody
// else (records name processes and arguments of other tenants' pods).
const (
	dirMode  = 0o750
	fileMode = 0o640
)

// logWriter is the part of a log file the file sink uses; tests substitute a
// writer that fails (ENOSPC) to exercise the error path without a full disk.
type logWriter interface {
	// Allocate reserves disk space for n bytes at off without changing the
	// file's size, so the write that follows cannot fail half-way for lack
	// of space. It returns errAllocateUnsupported where the filesystem has
	// no fallocate.
	Allocate(off, n int64) error
	Write(p []byte) (int, error)
	Truncate(size int64) error
	Close() error
}

// errAllocateUnsupported: the filesystem cannot reserve space ahead.
var errAllocateUnsupported = errors.New("fallocate not supported")

// FileSink writes JSON lines to <root>/<namespace>_<pod>_<pod-uid>/<container>.log
// and rotates each file at maxBytes, keeping maxFiles files in all
// (<container>.log, .log.1 newest rotated, … .log.<maxFiles-1> oldest), the
// scheme kubelet uses for container logs. Every path is built from node
// config and escaped names, never from anything an image controls.
type FileSink struct {
	root     string
	maxBytes int64
	maxFiles int

	// open is swapped by tests.
	open func(path string) (logWriter, int64, error)

	// retention, maxTotal and now bound the sink (see retention.go).
	retention time.Duration
	maxTotal  int64
	now       func() time.Time

	// mu guards files and pods: Write runs on the delivery goroutine,
	// Hold on the registering one, Sweep on the agent's sweep loop.
	mu    sync.Mutex
	files map[string]*logFile
	pods  map[string]*podState
}

type logFile struct {
	w    logWriter
	size int64
	// noAlloc is set once the filesystem refused fallocate.
	noAlloc bool
}

// NewFileSink returns a sink rooted at root. Nothing is created until the
// first record arrives, so a node that never sees a denial has no directory.
func NewFileSink(root string, maxBytes int64, maxFiles int) *FileSink {
	if maxFiles < 1 {
		maxFiles = 1
	}
	return &FileSink{root: root, maxBytes: maxBytes, maxFiles: maxFiles, open: openLogFile, now: time.Now,
		files: make(map[string]*logFile), pods: make(map[string]*podState)}
}

// Name implements Sink.
func (s *FileSink) Name() string { return "file " + s.root }

// Write implements Sink.
func (s *FileSink) Write(r *Record, line []byte) error {
	path := LogPath(s.root, r.attribution())
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := s.file(path)
	if err != nil {
		return err
	}
	if f.size > 0 && f.size+int64(len(line)) > s.maxBytes {
		if err := s.rotate(path, f); err != nil {
			return err
		}
		// The sink grew by a whole file: hold it to its cap. An error
		// (live files alone over the cap) surfaces in the periodic sweep.
		_, _ = s.sweepLocked()
		if f, err = s.file(path); err != nil {
			return err
		}
	}
	// Whole lines or nothing: a reader tailing the file (stockade denials
	// -f, a log shipper) must never see half a record. Reserving the space
	// first makes a full disk fail before any byte is written; a write that
	// started on a reservation cannot run out of space. Cutting a partial
	// line off afterwards (the fallback where fallocate is missing) would
	// leave it visible to a reader until the truncate.
	if !f.noAlloc {
		switch err := f.w.Allocate(f.size, int64(len(line))); {
		case errors.Is(err, errAllocateUnsupported):
			f.noAlloc = true
		case err != nil:
			return fmt.Errorf("failed to write %s: %w", path, err)
		}
	}
	n, err := f.w.Write(line)
	if err != nil {
		// Cut a partial line off (an I/O error mid-write, or a full disk
		// on a filesystem without fallocate) so the file stays valid JSON
		// lines; the record itself is reported as a gap.
		if n > 0 {
			_ = f.w.Truncate(f.size)
		}
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	f.size += int64(n)
	return nil
}

// file returns the open live file for path, creating directories and the
// file on first use.
func (s *FileSink) file(path string) (*logFile, error) {
	if f := s.files[path]; f != nil {
		return f, nil
	}
	dir := filepath.Dir(path)
	p := s.pod(dir)
	if err := s.lockPod(dir, p); err != nil {
		s.releasePod(dir, p)
		return nil, err
	}
	w, size, err := s.open(path)
	if err != nil {
		s.releasePod(dir, p)
		return nil, err
	}
	f := &logFile{w: w, size: size}
	s.files[path] = f
	p.files++
	return f, nil
}

// closeFile closes the live file of path. Called with s.mu held.
func (s *FileSink) closeFile(path string, f *logFile) error {
	delete(s.files, path)
	if p := s.pods[filepath.Dir(path)]; p != nil && p.files > 0 {
		p.files--
	}
	return f.w.Close()
}

// rotate shifts .log.N to .log.N+1 (dropping the oldest) and the live file
// to .log.1. Renames keep the inode, so a reader following the live file by
// handle reads its tail before moving on.
func (s *FileSink) rotate(path string, f *logFile) error {
	if err := s.closeFile(path, f); err != nil {
		return fmt.Errorf("failed to close %s for rotation: %w", path, err)
	}
	if s.maxFiles == 1 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to rotate %s: %w", path, err)
		}
		return nil
	}
	for n := s.maxFiles - 1; n >= 1; n-- {
		from := path
		if n > 1 {
			from = RotatedName(path, n-1)
		}
		if err := os.Rename(from, RotatedName(path, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to rotate %s: %w", path, err)
		}
	}
	return nil
}

// Release implements Releaser: it closes the container's file and drops
// the Hold its registration took; the pod is released (retention starts)
// when nothing holds it. A record that still arrives later simply reopens
// the file.
func (s *FileSink) Release(a denial.Attribution) {
	path := LogPath(s.root, a)
	dir := filepath.Dir(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[path]; f != nil {
		_ = s.closeFile(path, f)
	}
	if p := s.pods[dir]; p != nil {
		if p.holds > 0 {
			p.holds--
		}
		s.releasePod(dir, p)
	}
}

// Close implements Sink. The shim is going away, and with it whatever it
// still served: every pod it held is released.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for p, f := range s.files {
		if err := s.closeFile(p, f); err != nil {
			errs = append(errs, fmt.Errorf("failed to close %s: %w", p, err))
		}
	}
	for dir, p := range s.pods {
		p.holds, p.files = 0, 0
		s.releasePod(dir, p)
	}
	return errors.Join(errs...)
}

// mkdirAll creates dir (below root) with the sink's mode. The sink root is
// node config; the pod directory below it is an escaped name, so this never
// creates anything outside root.
func mkdirAll(root, dir string) error {
	if err := os.MkdirAll(root, dirMode); err != nil {
		return fmt.Errorf("failed to create denial sink %s: %w", root, err)
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("failed to create denial sink %s: %w", dir, err)
	}
	return nil
}

// openLogFile opens path for appending. O_NOFOLLOW: a symlink planted in the
// sink (by whoever could write there) must not redirect root's writes.
func openLogFile(path string) (logWriter, int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, fileMode)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("failed to stat %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", path)
	}
	return osLogFile{f}, st.Size(), nil
}

// osLogFile is a log file on disk.
type osLogFile struct{ *os.File }

// Allocate implements logWriter with fallocate(FALLOC_FL_KEEP_SIZE): the
// blocks are reserved but the size (what readers see) is unchanged until
// the write lands in them.
func (f osLogFile) Allocate(off, n int64) error {
	if n <= 0 {
		return nil
	}
	for {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return errAllocateUnsupported
		default:
			return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
		}
	}
}
