package apparmor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Environment variables the VM tier sets: a missing feature fails the test
// instead of skipping it.
const (
	requireAppArmorEnv = "STOCKADE_REQUIRE_APPARMOR"
	requireCgroup2Env  = "STOCKADE_REQUIRE_CGROUP2"
)

var newID = harness.NewID

// generatedLabel is what the kernel reports for a process confined by a
// generated profile: the name, then the mode.
var generatedLabel = regexp.MustCompile(`^(stockade-[0-9a-f]{16}) \((enforce|complain)\)$`)

// appArmorEnv returns the harness for the stockade handler on a host that
// enforces AppArmor, or skips (fails under STOCKADE_REQUIRE_APPARMOR=1).
func appArmorEnv(t *testing.T) *harness.Env {
	t.Helper()
	if reason := noAppArmor(); reason != "" {
		missing(t, requireAppArmorEnv, reason)
	}
	env := harness.Get(t)
	env.RequireStockade(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd and shim log, last lines:\n%s", env.LogTail(60))
		}
	})
	return env
}

// noAppArmor says why this host cannot enforce AppArmor profiles, "" when
// it can. It reads the kernel's files directly rather than through the
// shim's prober, so the test does not trust the code it tests.
func noAppArmor() string {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	if err != nil {
		return "the kernel has no AppArmor (" + err.Error() + ")"
	}
	if strings.TrimSpace(string(b)) != "Y" {
		return "AppArmor is disabled in the kernel"
	}
	if _, err := os.Stat("/sys/kernel/security/apparmor/profiles"); err != nil {
		return "AppArmor's securityfs interface is missing: " + err.Error()
	}
	if _, err := parserPath(); err != nil {
		return err.Error()
	}
	return ""
}

// noCgroup2Only says why this host is not cgroup v2 only, "" when it is.
func noCgroup2Only() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return "statfs /sys/fs/cgroup: " + err.Error()
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Sprintf("/sys/fs/cgroup is not cgroup2 (filesystem type %#x): a v1 or hybrid host", st.Type)
	}
	return ""
}

// missing skips t with reason, or fails it when env is set to 1.
func missing(t *testing.T, env, reason string) {
	t.Helper()
	if os.Getenv(env) == "1" {
		t.Fatalf("%s=1, but: %s", env, reason)
	}
	t.Skip(reason)
}

func parserPath() (string, error) {
	if p, err := osexec.LookPath("apparmor_parser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("apparmor_parser is not installed")
}

// label returns the AppArmor label of pid as the kernel reports it
// ("name (mode)" or "unconfined").
func label(t *testing.T, pid uint32) string {
	t.Helper()
	for _, f := range []string{"attr/apparmor/current", "attr/current"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err == nil {
			return strings.TrimRight(string(b), "\x00\n")
		}
	}
	t.Fatalf("cannot read the AppArmor label of pid %d", pid)
	return ""
}

// loadedProfiles returns the kernel's loaded profiles: name -> mode.
func loadedProfiles(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "name (mode)"; a name may contain blanks, the mode never does.
		l := sc.Text()
		i := strings.LastIndex(l, " (")
		if i < 0 {
			continue
		}
		m[l[:i]] = strings.TrimSuffix(l[i+2:], ")")
	}
	return m
}

// withProfile sets the spec's AppArmor profile, as a client or CRI asking
// for a particular one does.
func withProfile(name string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.ApparmorProfile = name
		return nil
	}
}

// withBPFFSTmpfs mounts a world-writable tmpfs at /sys/fs/bpf: the mount
// table lets the container write there, the profile's fixed deny rule for
// /sys/fs (outside cgroup) does not. Only AppArmor stands between the
// container and the write.
func withBPFFSTmpfs() oci.SpecOpts {
	return oci.WithMounts([]specs.Mount{{
		Destination: "/sys/fs/bpf", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"nosuid", "nodev", "noexec", "mode=1777"},
	}})
}

// startSleeper starts a busybox container that sleeps; it is removed when
// the test ends.
func startSleeper(t *testing.T, env *harness.Env, opts ...oci.SpecOpts) (client.Container, client.Task) {
	t.Helper()
	c := env.NewContainer(t, newID("aa"), []string{"sleep", "3600"}, opts...)
	task := env.Start(t, c)
	waitExec(t, task.Pid(), "sleep")
	return c, task
}

// waitExec waits until pid runs argv0: Start returns when the container's
// init is released, a moment before it execs the workload, and the profile
// applies at that exec (until then the init has the shim's label).
func waitExec(t *testing.T, pid uint32, argv0 string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		if a, _, _ := strings.Cut(string(b), "\x00"); filepath.Base(a) == argv0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d runs %q, not %s, 30 s after start", pid, b, argv0)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// execIn runs args in task and returns the exit code and output.
func execIn(t *testing.T, env *harness.Env, task client.Task, args ...string) (uint32, string) {
	t.Helper()
	ctx := env.Context()
	spec, err := task.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps := *spec.Process
	ps.Args = args
	ps.Terminal = false
	var out harness.Buffer
	p, err := task.Exec(ctx, newID("x"), &ps, env.NewIO(nil, &out, &out))
	if err != nil {
		t.Fatalf("exec %v: %v", args, err)
	}
	defer p.Delete(ctx, client.WithProcessKill)
	sc, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("start exec %v: %v", args, err)
	}
	var st client.ExitStatus
	select {
	case st = <-sc:
	case <-time.After(2 * time.Minute):
		t.Fatalf("exec %v did not exit within 2 minutes", args)
	}
	// The exit can be reported before the last output is copied; the copy
	// ends when the shim closes the pipes. Bounded, in case it only does at
	// Delete (deferred above): the output is then what arrived.
	copied := make(chan struct{})
	go func() { p.IO().Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
	}
	return st.ExitCode(), out.String()
}

// removeTask deletes a container's task (killing it) and waits for that.
func removeTask(t *testing.T, env *harness.Env, task client.Task) {
	t.Helper()
	if _, err := task.Delete(env.Context(), client.WithProcessKill); err != nil {
		t.Fatalf("delete task: %v", err)
	}
}

// kmsg follows the kernel log from the moment it is opened, keeping every
// line it has read. It reads the raw descriptor: through an *os.File the
// runtime poller would turn EAGAIN into waiting for the next message.
type kmsg struct {
	fd    int
	lines []string
}

func openKmsg(t *testing.T) *kmsg {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	if _, err := unix.Seek(fd, 0, io.SeekEnd); err != nil {
		unix.Close(fd)
		t.Fatalf("seek /dev/kmsg: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &kmsg{fd: fd}
}

// waitFor returns the first kernel log line, from the opening on, that
// contains every one of subs, waiting up to 30 s for it (audit records are
// printed by a kernel thread, a moment after the event).
func (k *kmsg) waitFor(t *testing.T, subs ...string) string {
	t.Helper()
	buf := make([]byte, 8192)
	deadline := time.Now().Add(30 * time.Second)
	seen := 0
	for {
		for ; seen < len(k.lines); seen++ {
			if containsAll(k.lines[seen], subs) {
				return k.lines[seen]
			}
		}
		n, err := unix.Read(k.fd, buf)
		switch {
		case err == nil:
			k.lines = append(k.lines, strings.TrimSpace(string(buf[:n])))
			continue
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.EINTR):
			continue // overwritten records: keep reading
		case !errors.Is(err, unix.EAGAIN):
			t.Fatalf("read /dev/kmsg: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no kernel log line with %q within 30 s", subs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count returns how many lines read so far contain every one of subs.
func (k *kmsg) count(subs ...string) int {
	n := 0
	for _, l := range k.lines {
		if containsAll(l, subs) {
			n++
		}
	}
	return n
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// loadTestProfile loads a permissive profile named name, as an operator
// loads a Localhost profile, and removes it when the test ends.
func loadTestProfile(t *testing.T, name string) {
	t.Helper()
	parser, err := parserPath()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), name)
	text := "profile " + name + " flags=(attach_disconnected,mediate_deleted) {\n" +
		"  file,\n  network,\n  capability,\n  signal,\n  ptrace,\n  unix,\n}\n"
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := osexec.Command(parser, "--replace", "--skip-cache", src).CombinedOutput(); err != nil {
		t.Fatalf("apparmor_parser --replace %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := osexec.Command(parser, "--remove", src).CombinedOutput(); err != nil {
			t.Errorf("apparmor_parser --remove %s: %v\n%s", name, err, out)
		}
	})
}

// runCmd runs a program and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := osexec.Command(name, args...).CombinedOutput()
	return string(out), err
}
