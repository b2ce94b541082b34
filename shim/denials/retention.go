package denials

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/node/fileutil"
)

// Retention of the file sink. A pod's directory outlives the pod by design
// (the records are evidence), but not forever, and the whole sink has a cap.
//
// Who is alive: a shim holds a shared flock on the directory of every pod
// it serves from the first record (or, for a pod whose directory exists,
// from the registration of its first container) until the last container
// of that pod it registered is gone. Then it writes a marker file
// (releasedMarker) whose mtime is when the pod went away. A sweeper takes an
// exclusive non-blocking flock: if it cannot, some shim still serves the pod.
// A shim that died (SIGKILL) released its locks with its fds but wrote no
// marker; its pod's time is then that of its newest file, which is at or
// before the pod's end.
//
// Every shim sweeps the whole sink root at start and then periodically
// (sweepInterval), and also enforces the size cap after each rotation, when
// files grow by a whole max_file_bytes. The sweep removes the directories of
// pods gone for longer than the retention. When the sink is over its cap it
// removes rotated files, oldest first, from any pod; then the directories of
// gone pods, oldest first. A live file of a running container is never cut:
// the cap holds as long as live files fit in it.

// releasedMarker is the file whose mtime says when a pod was released.
// The CLI only reads *.log files, so it never shows up as records.
const releasedMarker = ".released"

// sweepInterval is how often a running shim sweeps: a quarter of the
// retention, between a minute and an hour.
func sweepInterval(retention time.Duration) time.Duration {
	if retention <= 0 {
		return time.Hour
	}
	return min(max(retention/4, time.Minute), time.Hour)
}

// podState is what the sink holds for one pod directory.
type podState struct {
	// holds counts registered containers of the pod (Hold minus Release).
	holds int
	// files counts the pod's open log files.
	files int
	// lock is the directory's fd with a shared flock, or -1.
	lock int
}

// SweepStats is what one sweep removed.
type SweepStats struct {
	// Pods is the number of pod directories removed.
	Pods int
	// Files is the number of files removed, Bytes their size.
	Files int
	Bytes int64
	// Total is the size of the sink after the sweep.
	Total int64
}

// Bound sets the sink's retention (0: keep pod directories forever) and its
// total size cap (0: none), and the clock the sweeps use.
func (s *FileSink) Bound(retention time.Duration, maxTotal int64, now func() time.Time) *FileSink {
	s.retention, s.maxTotal = retention, maxTotal
	if now != nil {
		s.now = now
	}
	return s
}

func (s *FileSink) podDir(a denial.Attribution) string {
	return filepath.Join(s.root, PodDir(a.Namespace, a.Pod, a.PodUID))
}

// pod returns the state of dir, creating it. Called with s.mu held.
func (s *FileSink) pod(dir string) *podState {
	p := s.pods[dir]
	if p == nil {
		p = &podState{lock: -1}
		s.pods[dir] = p
	}
	return p
}

// Hold tells the sink that a container of a's pod is registered: the pod is
// alive until every Hold has been Released. If the pod's directory exists
// already (a container restarted, or a second container of a pod with
// records), it is locked now, so a sweep elsewhere cannot remove it.
func (s *FileSink) Hold(a denial.Attribution) {
	dir := s.podDir(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pod(dir)
	p.holds++
	if p.holds > 1 {
		return
	}
	if _, err := os.Lstat(dir); err == nil && p.lock < 0 {
		_ = s.lockPod(dir, p)
	}
	// Alive again: the retention clock restarts when it is released.
	_ = os.Remove(filepath.Join(dir, releasedMarker))
}

// lockPod creates dir if needed and takes its shared lock. A sweeper may
// remove the directory between the mkdir and the lock; a removed directory
// has no links left, and the loop makes it again. Called with s.mu held.
func (s *FileSink) lockPod(dir string, p *podState) error {
	if p.lock >= 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		if err := mkdirAll(s.root, dir); err != nil {
			return err
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("failed to open denial sink %s: %w", dir, err)
		}
		if err := fileutil.Flock(fd, unix.LOCK_SH); err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("failed to lock denial sink %s: %w", dir, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err == nil && st.Nlink > 0 {
			p.lock = fd
			return nil
		}
		_ = unix.Close(fd)
		if attempt >= 2 {
			return fmt.Errorf("denial sink %s: removed while being opened", dir)
		}
	}
}

// releasePod drops the pod's state once nothing holds it: the marker starts
// its retention clock and the lock goes. Called with s.mu held.
func (s *FileSink) releasePod(dir string, p *podState) {
	if p.holds > 0 || p.files > 0 {
		return
	}
	if p.lock >= 0 {
		s.markReleased(dir)
		_ = unix.Close(p.lock)
		p.lock = -1
	}
	delete(s.pods, dir)
}

func (s *FileSink) markReleased(dir string) {
	path := filepath.Join(dir, releasedMarker)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, fileMode)
	if err != nil {
		return
	}
	_ = f.Close()
	now := s.now()
	_ = os.Chtimes(path, now, now)
}

// sweepPod is one pod directory as a sweep sees it.
type sweepPod struct {
	dir string
	// gone: no shim holds it; fd then holds our exclusive lock.
	gone   bool
	fd     int
	newest time.Time
	files  []sweepFile
}

type sweepFile struct {
	path    string
	size    int64
	mtime   time.Time
	rotated bool
}

// Sweep removes what retention and the size cap say must go. It runs at
// agent start, periodically, and after rotations.
func (s *FileSink) Sweep() (SweepStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked()
}

func (s *FileSink) sweepLocked() (SweepStats, error) {
	var st SweepStats
	if s.retention <= 0 && s.maxTotal <= 0 {
		return st, nil
	}
	now := s.now()
	entries, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("failed to sweep denial sink %s: %w", s.root, err)
	}
	var pods []*sweepPod
	defer func() {
		for _, p := range pods {
			if p.gone && p.fd >= 0 {
				_ = unix.Close(p.fd)
			}
		}
	}()
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := &sweepPod{dir: filepath.Join(s.root, e.Name()), fd: -1}
		if ps := s.pods[p.dir]; ps == nil || ps.lock < 0 && ps.holds == 0 && ps.files == 0 {
			fd, err := unix.Open(p.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			if fileutil.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
				p.gone, p.fd = true, fd
			} else {
				_ = unix.Close(fd)
			}
		}
		files, err := os.ReadDir(p.dir)
		if err != nil {
			continue
		}
		for _, f := range files {
			if !f.Type().IsRegular() {
				continue
			}
			fi, err := f.Info()
			if err != nil {
				continue
			}
			sf := sweepFile{path: filepath.Join(p.dir, f.Name()), size: fi.Size(), mtime: fi.ModTime(), rotated: isRotated(f.Name())}
			p.files = append(p.files, sf)
			st.Total += sf.size
			if sf.mtime.After(p.newest) {
				p.newest = sf.mtime
			}
		}
		pods = append(pods, p)
	}
	// Retention: pods gone for longer than it.
	kept := pods[:0:0]
	for _, p := range pods {
		if p.gone && s.retention > 0 && now.Sub(p.newest) >= s.retention {
			s.removePod(p, &st)
			continue
		}
		kept = append(kept, p)
	}
	if s.maxTotal <= 0 || st.Total <= s.maxTotal {
		return st, nil
	}
	// The cap: rotated files, oldest first, from any pod.
	var rotated []sweepFile
	for _, p := range kept {
		for _, f := range p.files {
			if f.rotated {
				rotated = append(rotated, f)
			}
		}
	}
	sort.Slice(rotated, func(i, j int) bool { return rotated[i].mtime.Before(rotated[j].mtime) })
	for _, f := range rotated {
		if st.Total <= s.maxTotal {
			return st, nil
		}
		if err := os.Remove(f.path); err == nil {
			st.Files++
			st.Bytes += f.size
			st.Total -= f.size
		}
	}
	// Then whole gone pods, oldest first. Their rotated files are already
	// gone and counted; what is left of them is their live files.
	sort.Slice(kept, func(i, j int) bool { return kept[i].newest.Before(kept[j].newest) })
	for _, p := range kept {
		if st.Total <= s.maxTotal {
			return st, nil
		}
		if p.gone {
			var left []sweepFile
			for _, f := range p.files {
				if _, err := os.Lstat(f.path); err == nil {
					left = append(left, f)
				}
			}
			p.files = left
			s.removePod(p, &st)
		}
	}
	if st.Total > s.maxTotal {
		return st, fmt.Errorf("denial sink %s: %d bytes over max_total_bytes %d in live files of running containers", s.root, st.Total-s.maxTotal, s.maxTotal)
	}
	return st, nil
}

// removePod deletes a gone pod's files and directory while holding its
// exclusive lock, so no shim starts writing there meanwhile (a writer that
// was waiting for the lock finds the directory unlinked and makes it anew).
func (s *FileSink) removePod(p *sweepPod, st *SweepStats) {
	for _, f := range p.files {
		if err := unix.Unlinkat(p.fd, filepath.Base(f.path), 0); err == nil || errors.Is(err, unix.ENOENT) {
			if err == nil {
				st.Files++
				st.Bytes += f.size
			}
			st.Total -= f.size
		}
	}
	// Anything else in it (a stray directory) keeps it; that is fine.
	if err := unix.Rmdir(p.dir); err == nil {
		st.Pods++
	}
}

// isRotated reports whether name is a rotated copy (<container>.log.N).
func isRotated(name string) bool {
	i := strings.LastIndex(name, ".log.")
	if i < 0 {
		return false
	}
	n, err := strconv.Atoi(name[i+len(".log."):])
	return err == nil && n > 0
}
