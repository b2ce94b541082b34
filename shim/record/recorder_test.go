//go:build linux && cgo && seccomp

package record

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"github.com/stockade-dev/stockade/internal/roottest"
	"golang.org/x/sys/unix"
)

// The child side of TestRecordCgroup: it makes sysinfo before loading a
// filter and uname, getpriority after, then exits.
func TestMain(m *testing.M) {
	if os.Getenv("STOCKADE_RECORD_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

func child() int {
	// The filter covers this thread only; every call below stays on it.
	runtime.LockOSThread()
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	f, err := libseccomp.NewFilter(libseccomp.ActAllow)
	if err != nil {
		return 10
	}
	// getpid is logged rather than allowed; nothing here calls it.
	if err := f.AddRule(libseccomp.ScmpSyscall(unix.SYS_GETPID), libseccomp.ActLog); err != nil {
		return 12
	}
	if err := f.Load(); err != nil {
		return 13
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	_, _ = unix.Getpriority(unix.PRIO_PROCESS, 0)
	return 0
}

// unifiedRoot is where cgroup v2 is mounted: the root on a pure v2 host,
// /sys/fs/cgroup/unified on a hybrid one.
func unifiedRoot(t *testing.T) string {
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir
		}
	}
	t.Skip("no cgroup v2 hierarchy on this host")
	return ""
}

func TestRecordCgroup(t *testing.T) {
	roottest.Require(t, "loads eBPF programs")
	dir := filepath.Join(unifiedRoot(t), "stockade-record-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	ctx := context.Background()
	r := New()
	defer r.Close(ctx)
	rec, err := r.Watch(ctx, dir)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if !r.Attached() {
		t.Fatal("program not attached while recording")
	}
	if _, err := r.Watch(ctx, dir); err == nil {
		t.Fatal("watching one cgroup twice succeeded")
	}

	// Syscalls outside the cgroup, under a filter or not, are not recorded:
	// this test process makes uname calls too.
	var u unix.Utsname
	_ = unix.Uname(&u)

	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "STOCKADE_RECORD_CHILD=1")
	cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	got, err := rec.Syscalls()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded: %v", got)
	native := got[specs.ArchX86_64]
	if runtime.GOARCH == "arm64" {
		native = got[specs.ArchAARCH64]
	}
	for _, want := range []string{"uname", "getpriority", "exit_group"} {
		if !slices.Contains(native, want) {
			t.Errorf("%s made under the filter is not recorded: %v", want, native)
		}
	}
	for _, never := range []string{"sysinfo", "seccomp"} {
		if slices.Contains(native, never) {
			t.Errorf("%s was made before the filter was loaded but is recorded", never)
		}
	}
	if len(got) != 1 {
		t.Errorf("compat ABIs recorded for a native program: %v", got)
	}

	rec.Stop(ctx)
	rec.Stop(ctx)
	if r.Attached() {
		t.Error("program still attached after the last recording stopped")
	}
	if _, err := rec.Syscalls(); err == nil {
		t.Error("Syscalls after Stop succeeded")
	}
}

func TestWatchBadCgroup(t *testing.T) {
	r := New()
	defer r.Close(context.Background())
	if _, err := r.Watch(context.Background(), "/nonexistent/cgroup"); err == nil {
		t.Fatal("Watch of a missing cgroup succeeded")
	}
	if r.Attached() {
		t.Error("program attached after a failed Watch")
	}
}

func TestNames(t *testing.T) {
	seen := make([]byte, valueSize)
	seen[slotNative*maxNr+unix.SYS_READ] = 1
	seen[slotNative*maxNr+unix.SYS_UNAME] = 1
	seen[slotCompat*maxNr+20] = 1 // i386 getpid
	got, err := names("amd64", seen)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[specs.ArchX86_64], []string{"read", "uname"}) || !slices.Equal(got[specs.ArchX86], []string{"getpid"}) {
		t.Errorf("names = %v", got)
	}
	if _, err := names("amd64", seen[:10]); err == nil {
		t.Error("short table accepted")
	}
}
