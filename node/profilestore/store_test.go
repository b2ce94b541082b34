package profilestore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

func testStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.GOARCH = "amd64"
	return s
}

func mustSave(t *testing.T, s *Store, p *recorded.Profile) *recorded.Profile {
	t.Helper()
	got, err := s.Save(p)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir + "/./")
	if err != nil || s.Dir != dir {
		t.Fatalf("Open(%s) = %+v, %v", dir, s, err)
	}
	if _, err := Open("relative/dir"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("relative path: %v", err)
	}
	missing := filepath.Join(dir, "nope")
	_, err = Open(missing)
	if !errdefs.IsFailedPrecondition(err) || err.Error() != "profile store "+missing+": does not exist" {
		t.Errorf("missing dir: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file: %v", err)
	}
}

func TestSaveLoadMerge(t *testing.T) {
	s := testStore(t)
	first := mustSave(t, s, webProfile())
	if first.Runs != 1 {
		t.Fatalf("first save: runs %d", first.Runs)
	}
	path := s.Path(shopWebApp)
	if want := filepath.Join(s.Dir, "shop", "web", "app.json"); path != want {
		t.Fatalf("Path = %s, want %s", path, want)
	}
	for p, mode := range map[string]fs.FileMode{
		path: 0o644, filepath.Dir(path): 0o755 | fs.ModeDir, filepath.Dir(filepath.Dir(path)): 0o755 | fs.ModeDir,
	} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, mode %v, want %v", p, err, fi.Mode(), mode)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(data, mustEncode(t, webProfile())) {
		t.Errorf("stored file differs from Encode (%v):\n%s", err, data)
	}

	later := recorded.New(shopWebApp, recorded.Image{Name: "docker.io/library/nginx:1.28"}, t0.Add(time.Hour),
		map[specs.Arch][]string{specs.ArchX86_64: {"getrandom", "read"}, specs.ArchX32: {"read"}})
	merged := mustSave(t, s, later)
	want := mustMerge(t, webProfile(), later)
	if !bytes.Equal(mustEncode(t, merged), mustEncode(t, want)) {
		t.Errorf("Save returned %+v, want %+v", merged, want)
	}
	loaded, err := s.Load(shopWebApp)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustEncode(t, loaded), mustEncode(t, want)) {
		t.Errorf("Load = %+v, want %+v", loaded, want)
	}
	if loaded.Runs != 2 || len(loaded.Images) != 2 || !slices.Contains(loaded.Syscalls[specs.ArchX86_64], "getrandom") {
		t.Errorf("merged profile %+v", loaded)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "app.json" && e.Name() != "app.json.lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestSaveNormalizesHandBuiltProfile(t *testing.T) {
	s := testStore(t)
	p := &recorded.Profile{
		APIVersion: recorded.APIVersion, Kind: recorded.Kind, Name: shopWebApp, Runs: 1,
		FirstRecorded: t0.In(time.FixedZone("X", 3600)), LastRecorded: t0,
		Syscalls: map[specs.Arch][]string{specs.ArchX86_64: {"read"}, specs.ArchX86: {}},
	}
	got := mustSave(t, s, p)
	if got.FirstRecorded.Location() != time.UTC || len(got.Syscalls) != 1 || got.Checksum == "" {
		t.Errorf("Save returned %+v", got)
	}
	if p.Checksum != "" {
		t.Error("Save changed its argument")
	}
}

func TestSaveRejectsInvalid(t *testing.T) {
	s := testStore(t)
	for name, p := range map[string]*recorded.Profile{
		"unknown syscall": recorded.New(shopWebApp, recorded.Image{}, t0, map[specs.Arch][]string{specs.ArchX86_64: {"read", "zz_nope"}}),
		"foreign ABI":     recorded.New(shopWebApp, recorded.Image{}, t0, map[specs.Arch][]string{specs.ArchAARCH64: {"read"}}),
		"bad name":        recorded.New(recorded.Name{Namespace: "shop", Workload: "../..", Container: "app"}, recorded.Image{}, t0, nil),
		"nil":             nil,
	} {
		if _, err := s.Save(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: Save: %v, want an invalid-argument error", name, err)
		}
	}
	if entries, _ := os.ReadDir(s.Dir); len(entries) != 0 {
		t.Errorf("invalid saves wrote %v", entries)
	}
}

func TestLoadNotFound(t *testing.T) {
	s := testStore(t)
	_, err := s.Load(shopWebApp)
	want := `recorded profile "shop/web/app" not found in store ` + s.Dir
	if !errdefs.IsNotFound(err) || err.Error() != want {
		t.Fatalf("Load: %v, want %q", err, want)
	}
	if _, err := s.Load(recorded.Name{Namespace: "shop", Workload: "..", Container: "x"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Load of an invalid name: %v", err)
	}
}

// corruptions turn a good stored file into a corrupt one.
var corruptions = []struct {
	name, want string
	edit       func(t *testing.T, data []byte) []byte
}{
	{"truncated", "unexpected end of JSON input", func(t *testing.T, d []byte) []byte { return d[:len(d)-20] }},
	{"edited syscall list", "checksum: content hashes to", func(t *testing.T, d []byte) []byte {
		return bytes.Replace(d, []byte(`"sendfile"`), []byte(`"sendmsg"`), 1)
	}},
	// Decode's own findings (unknown fields, syscalls, kinds) are the
	// recorded package's tests; here what matters is that the store
	// reports any of them as data loss, and that a file holding another
	// (intact) profile is caught by the store.
	{"other profile's file", `the file holds profile "shop/api/app"`, func(t *testing.T, d []byte) []byte {
		return mustEncode(t, recorded.New(recorded.Name{Namespace: "shop", Workload: "api", Container: "app"}, recorded.Image{}, t0,
			map[specs.Arch][]string{specs.ArchX86_64: {"read"}}))
	}},
}

func TestCorruptStoredProfile(t *testing.T) {
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			s := testStore(t)
			mustSave(t, s, webProfile())
			other := recorded.Name{Namespace: "shop", Workload: "web", Container: "sidecar"}
			mustSave(t, s, recorded.New(other, recorded.Image{}, t0, map[specs.Arch][]string{specs.ArchX86_64: {"read"}}))
			path := s.Path(shopWebApp)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			bad := c.edit(t, good)
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}

			check := func(op string, err error) {
				t.Helper()
				if !errdefs.IsDataLoss(err) {
					t.Errorf("%s: %v, want a data-loss error", op, err)
					return
				}
				for _, want := range []string{`"shop/web/app"`, path, c.want} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s: %q does not mention %q", op, err, want)
					}
				}
			}
			p, err := s.Load(shopWebApp)
			if p != nil {
				t.Errorf("Load returned a corrupt profile")
			}
			check("Load", err)

			p, err = s.Save(webProfile())
			if p != nil {
				t.Errorf("Save merged into a corrupt profile")
			}
			check("Save", err)
			if now, _ := os.ReadFile(path); !bytes.Equal(now, bad) {
				t.Errorf("Save overwrote the corrupt file")
			}

			ps, errs := s.List()
			if len(ps) != 1 || ps[0].Name != other {
				t.Errorf("List returned %d profiles, want only %s", len(ps), other)
			}
			if len(errs) != 1 {
				t.Fatalf("List errors %v, want one", errs)
			}
			check("List", errs[0])
		})
	}
}

func TestList(t *testing.T) {
	s := testStore(t)
	if ps, errs := s.List(); len(ps) != 0 || len(errs) != 0 {
		t.Fatalf("empty store: %v %v", ps, errs)
	}
	names := []recorded.Name{{Namespace: "shop", Workload: "web", Container: "app"}, {Namespace: "default", Workload: "solo", Container: "solo"}, {Namespace: "shop", Workload: "api", Container: "app"}, {Namespace: "shop", Workload: "web", Container: "sidecar"}, {Namespace: "kube-system", Workload: "coredns", Container: "coredns"}}
	for _, n := range names {
		mustSave(t, s, recorded.New(n, recorded.Image{}, t0, map[specs.Arch][]string{specs.ArchX86_64: {"read"}}))
	}
	// What List must skip: hidden temporaries, locks, other files, and
	// stray files outside the layout.
	for _, f := range []string{"shop/web/.app.json.tmp-123", "shop/web/notes.txt", "README", "shop/README.json", ".hidden/x/y.json"} {
		p := filepath.Join(s.Dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A file the store would never write reports itself.
	if err := os.WriteFile(filepath.Join(s.Dir, "shop", "web", "App.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, errs := s.List()
	var got []string
	for _, p := range ps {
		got = append(got, p.Name.String())
	}
	want := []string{"default/solo/solo", "kube-system/coredns/coredns", "shop/api/app", "shop/web/app", "shop/web/sidecar"}
	if !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(s.Dir, "shop", "web", "App.json")) || !errdefs.IsDataLoss(errs[0]) {
		t.Errorf("List errors %v, want one naming App.json", errs)
	}
}

func TestListMissingDir(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "gone")}
	ps, errs := s.List()
	if len(ps) != 0 || len(errs) != 1 || !errors.Is(errs[0], fs.ErrNotExist) || !strings.Contains(errs[0].Error(), s.Dir) {
		t.Fatalf("List of a missing store: %v %v", ps, errs)
	}
}

func TestDelete(t *testing.T) {
	s := testStore(t)
	sidecar := recorded.Name{Namespace: "shop", Workload: "web", Container: "sidecar"}
	mustSave(t, s, webProfile())
	mustSave(t, s, recorded.New(sidecar, recorded.Image{}, t0, nil))
	if err := s.Delete(shopWebApp); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.Path(shopWebApp), s.Path(shopWebApp) + ".lock"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if _, err := s.Load(sidecar); err != nil {
		t.Errorf("Delete took the sibling: %v", err)
	}
	if err := s.Delete(shopWebApp); !errdefs.IsNotFound(err) {
		t.Errorf("second Delete: %v", err)
	}
	if err := s.Delete(sidecar); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "shop")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("emptied namespace directory left behind: %v", err)
	}
	if err := s.Delete(recorded.Name{Namespace: "nope", Workload: "nope", Container: "nope"}); !errdefs.IsNotFound(err) {
		t.Errorf("Delete of a name never saved: %v", err)
	}
	if err := s.Delete(recorded.Name{Namespace: "..", Workload: "a", Container: "b"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Delete of an invalid name: %v", err)
	}
	// The store works after Delete removed everything.
	if p := mustSave(t, s, webProfile()); p.Runs != 1 {
		t.Errorf("save after delete: runs %d", p.Runs)
	}
}

// distinctSyscalls returns n names known on amd64, one per saver, so the
// union shows whether any save was lost.
func distinctSyscalls(t testing.TB, n int) []string {
	pool := strings.Fields(`accept accept4 access alarm bind brk capget chdir chmod chown
		clock_getres clock_gettime close connect dup dup2 dup3 epoll_create epoll_create1
		epoll_ctl epoll_wait eventfd eventfd2 faccessat fadvise64 fallocate fchdir fchmod
		fchown fcntl fdatasync flock fstat fstatfs fsync ftruncate futex getcwd getdents64
		getegid geteuid getgid getpeername getpgrp getpid getppid getrandom getrlimit
		getsockname getsockopt gettid gettimeofday getuid inotify_init1 ioctl kill
		listen lseek madvise memfd_create mkdirat mmap mprotect mremap munmap nanosleep
		newfstatat openat pipe pipe2 poll pread64 prlimit64 pwrite64 read readlink
		readlinkat readv recvfrom recvmsg rename renameat rt_sigaction rt_sigprocmask
		rt_sigreturn sched_getaffinity sched_yield select sendfile sendmsg sendto
		set_robust_list set_tid_address setitimer setsockopt shutdown sigaltstack socket
		socketpair stat statfs statx sysinfo tgkill time timerfd_create umask uname
		unlink unlinkat wait4 write writev`)
	var out []string
	for _, s := range pool {
		if seccomp.Known("amd64", s) {
			out = append(out, s)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d distinct syscalls for %d savers", len(out), n)
	}
	return out[:n]
}

func saverProfile(i int, name string) *recorded.Profile {
	return recorded.New(shopWebApp, recorded.Image{Name: fmt.Sprintf("registry.example/app:%d", i%3)}, t0.Add(time.Duration(i)*time.Minute),
		map[specs.Arch][]string{specs.ArchX86_64: {name, "exit_group"}, specs.ArchX86: {"socketcall"}})
}

func checkAllSaved(t *testing.T, s *Store, names []string) {
	t.Helper()
	p, err := s.Load(shopWebApp)
	if err != nil {
		t.Fatal(err)
	}
	if p.Runs != len(names) {
		t.Errorf("runs %d, want %d: saves were lost", p.Runs, len(names))
	}
	want := append(slices.Clone(names), "exit_group")
	slices.Sort(want)
	want = slices.Compact(want)
	if got := p.Syscalls[specs.ArchX86_64]; !slices.Equal(got, want) {
		t.Errorf("syscalls %v, want %v", got, want)
	}
	if !p.FirstRecorded.Equal(t0) || !p.LastRecorded.Equal(t0.Add(time.Duration(len(names)-1)*time.Minute)) {
		t.Errorf("first %v last %v", p.FirstRecorded, p.LastRecorded)
	}
	if len(p.Images) != min(3, len(names)) {
		t.Errorf("images %v", p.Images)
	}
}

func TestConcurrentSave(t *testing.T) {
	s := testStore(t)
	const savers = 48
	names := distinctSyscalls(t, savers)
	var wg sync.WaitGroup
	errs := make(chan error, savers)
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each saver opens its own store, as each shim would.
			st, err := Open(s.Dir)
			if err != nil {
				errs <- err
				return
			}
			st.GOARCH = "amd64"
			if _, err := st.Save(saverProfile(i, n)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkAllSaved(t, s, names)
}

// TestConcurrentSaveDelete: saves racing deletes of a sibling (which
// removes lock files and directories) still all land.
func TestConcurrentSaveDelete(t *testing.T) {
	s := testStore(t)
	sibling := recorded.Name{Namespace: "shop", Workload: "web", Container: "sidecar"}
	const savers = 32
	names := distinctSyscalls(t, savers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Save(recorded.New(sibling, recorded.Image{}, t0, nil)); err != nil {
				t.Error(err)
				return
			}
			if err := s.Delete(sibling); err != nil && !errdefs.IsNotFound(err) {
				t.Error(err)
				return
			}
		}
	}()
	var savesWG sync.WaitGroup
	for i, n := range names {
		savesWG.Add(1)
		go func() {
			defer savesWG.Done()
			if _, err := s.Save(saverProfile(i, n)); err != nil {
				t.Error(err)
			}
		}()
	}
	savesWG.Wait()
	close(stop)
	wg.Wait()
	checkAllSaved(t, s, names)
}

const helperEnv = "STOCKADE_RECORDED_SAVE_HELPER"

// TestConcurrentSaveProcesses saves from several processes at once, as
// the shims of a workload's replicas do: flock, not an in-process mutex,
// must serialise them.
func TestConcurrentSaveProcesses(t *testing.T) {
	s := testStore(t)
	const procs, perProc = 6, 8
	names := distinctSyscalls(t, procs*perProc)
	var (
		cmds []*exec.Cmd
		outs []*bytes.Buffer
	)
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSaveHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+s.Dir, "HELPER_FIRST="+strconv.Itoa(p*perProc), "HELPER_COUNT="+strconv.Itoa(perProc))
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	checkAllSaved(t, s, names)
}

// TestSaveHelperProcess is the child of TestConcurrentSaveProcesses.
func TestSaveHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestConcurrentSaveProcesses")
	}
	first, _ := strconv.Atoi(os.Getenv("HELPER_FIRST"))
	count, _ := strconv.Atoi(os.Getenv("HELPER_COUNT"))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.GOARCH = "amd64"
	names := distinctSyscalls(t, first+count)
	var wg sync.WaitGroup
	for i := first; i < first+count; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Save(saverProfile(i, names[i])); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// TestReadOnlyStore: saving into a store that cannot be written fails with
// an error naming the store; what is stored stays readable. Tests run as
// root here, which ignores permission bits, so root gets a read-only
// tmpfs instead.
func TestReadOnlyStore(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0755"); err != nil {
			t.Skipf("running as root and cannot mount a tmpfs to make read-only (%v)", err)
		}
		t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.GOARCH = "amd64"
	mustSave(t, s, webProfile())
	wantKind := errdefs.IsPermissionDenied
	if os.Geteuid() == 0 {
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		wantKind = errdefs.IsFailedPrecondition
	} else {
		for _, d := range []string{dir, filepath.Join(dir, "shop"), filepath.Join(dir, "shop", "web")} {
			if err := os.Chmod(d, 0o555); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(d, 0o755) })
		}
		// The lock file of an existing profile is still writable by its
		// owner; only new names hit the directory's permissions here.
	}
	for _, p := range []*recorded.Profile{recorded.New(recorded.Name{Namespace: "other", Workload: "w", Container: "c"}, recorded.Image{}, t0, nil), recorded.New(recorded.Name{Namespace: "shop", Workload: "web", Container: "new"}, recorded.Image{}, t0, nil)} {
		_, err := s.Save(p)
		if err == nil || !wantKind(err) || !strings.Contains(err.Error(), "profile store "+dir) {
			t.Errorf("Save of %s into a read-only store: %v", p.Name, err)
		}
	}
	if os.Geteuid() == 0 {
		_, err := s.Save(webProfile())
		if !errdefs.IsFailedPrecondition(err) {
			t.Errorf("Save of a stored name into a read-only store: %v", err)
		}
	}
	if p, err := s.Load(shopWebApp); err != nil || p.Runs != 1 {
		t.Errorf("Load from a read-only store: %v", err)
	}
	if ps, errs := s.List(); len(ps) != 1 || len(errs) != 0 {
		t.Errorf("List of a read-only store: %v %v", ps, errs)
	}
}

func TestStoreErrKinds(t *testing.T) {
	for errno, is := range map[unix.Errno]func(error) bool{
		unix.EROFS:  errdefs.IsFailedPrecondition,
		unix.EACCES: errdefs.IsPermissionDenied,
		unix.EPERM:  errdefs.IsPermissionDenied,
	} {
		err := storeErr("/store", &fs.PathError{Op: "open", Path: "/store/x", Err: errno})
		if !is(err) || !strings.HasPrefix(err.Error(), "profile store /store: open /store/x: ") {
			t.Errorf("%v: %v", errno, err)
		}
	}
}
