package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// teardownTimeout bounds the polite part of teardown (CRI and task API
// calls); whatever is left after it is killed and unmounted.
const teardownTimeout = 90 * time.Second

// Close removes every pod, container and task in both namespaces, stops
// containerd, kills any shim or container process it left, unmounts
// everything under Dir, deletes the CNI bridge and removes Dir. It is safe
// to call more than once; copies from ForHandler do nothing.
func (e *Env) Close() error {
	if !e.owner || e.daemon == nil {
		return nil
	}
	d := e.daemon
	e.owner = false
	var errs []error

	if e.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
		errs = append(errs, e.removeCRIPods(ctx))
		for _, ns := range []string{Namespace, CRINamespace} {
			errs = append(errs, removeContainers(namespaces.WithNamespace(ctx, ns), e.Client))
		}
		cancel()
		_ = e.Client.Close()
	}
	errs = append(errs, d.stop())

	// Shims outlive containerd by design; so do containers whose shim was
	// killed. Anything still bound to this containerd goes now.
	for range 3 {
		if n := killStrays(e.Address, e.Dir); n == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	errs = append(errs, UnmountUnder(e.Dir))
	errs = append(errs, DeleteLink(d.layout.Bridge))
	// libcni caches results host-wide, named after the network.
	stale, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", d.layout.Network+"-*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	if os.Getenv(KeepEnv) == "1" {
		d.logf("kept %s (%s=1)", e.Dir, KeepEnv)
	} else if err := os.RemoveAll(e.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", e.Dir, err))
	}
	return errors.Join(errs...)
}

// removeCRIPods stops and removes every pod sandbox through CRI, so that
// CNI releases addresses and veths and CRI unmounts network namespaces.
func (e *Env) removeCRIPods(ctx context.Context) error {
	conn, err := e.DialCRI()
	if err != nil {
		return err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	pods, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var errs []error
	for _, p := range pods.Items {
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod %s: %w", p.Id, err))
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod %s: %w", p.Id, err))
		}
	}
	return errors.Join(errs...)
}

// removeContainers kills and deletes every task and container in ctx's
// namespace, with their snapshots.
func removeContainers(ctx context.Context, c *client.Client) error {
	cs, err := c.Containers(ctx)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	for _, ctr := range cs {
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
				errs = append(errs, fmt.Errorf("delete task %s: %w", ctr.ID(), err))
			}
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// proc is what teardown needs to know about one process.
type proc struct {
	pid  int
	argv []string
	root string // target of /proc/<pid>/root
}

func (p proc) argv0() string {
	if len(p.argv) == 0 {
		return ""
	}
	return p.argv[0]
}

// hasAddress reports whether the process was started with -address addr,
// as containerd starts every shim.
func (p proc) hasAddress(addr string) bool {
	for i, a := range p.argv {
		if (a == "-address" || a == "--address") && i+1 < len(p.argv) && p.argv[i+1] == addr {
			return true
		}
		if a == "-address="+addr || a == "--address="+addr {
			return true
		}
	}
	return false
}

func scanProcs() ([]proc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil {
			continue // gone already
		}
		root, _ := os.Readlink(filepath.Join("/proc", ent.Name(), "root"))
		out = append(out, proc{
			pid:  pid,
			argv: strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"),
			root: root,
		})
	}
	return out, nil
}

// killStrays SIGKILLs shims started for the containerd at addr and every
// process whose root directory lies under dir (container processes), and
// returns how many it signalled.
func killStrays(addr, dir string) int {
	procs, err := scanProcs()
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range procs {
		if p.hasAddress(addr) || strings.HasPrefix(p.root, dir+"/") {
			if unix.Kill(p.pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n
}

// Mount is one line of /proc/self/mountinfo: where, and which filesystem.
type Mount struct{ Point, FSType string }

// Mounts lists this process's mounts from /proc/self/mountinfo.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// mountinfo: id parent dev root mount-point ... - fstype source options
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		out = append(out, Mount{Point: UnescapeMountPath(fields[4]), FSType: fields[sep+1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// UnmountUnder lazily unmounts every mount point under dir, deepest first.
func UnmountUnder(dir string) error {
	ms, err := Mounts()
	if err != nil {
		return err
	}
	var points []string
	for _, m := range ms {
		if strings.HasPrefix(m.Point, dir+"/") {
			points = append(points, m.Point)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// UnescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func UnescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// DeleteLink removes a network link such as the CNI bridge (CNI DEL leaves
// the bridge itself); a link that does not exist is no error.
func DeleteLink(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); err != nil {
		return nil
	}
	if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
