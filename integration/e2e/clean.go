package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/integration/harness"
)

// The host state one cluster leaves and the next run must find even when the
// previous one was killed half-way: a fixed directory, a fixed cgroup name,
// and small files in the directory naming everything else.
const (
	// cgroupName is the kubelet's cgroup root under every hierarchy; every
	// pod and container cgroup lies below it.
	cgroupName = "stockade-e2e"
	// harnessDirFile holds the private containerd's directory (random).
	harnessDirFile = "harness-dir"
	// bridgeFile holds the CNI bridge's name and networkFile the CNI
	// network's name (libcni caches results host-wide under it).
	bridgeFile  = "bridge"
	networkFile = "network"
	// sysctlFile holds the values of the sysctls the kubelet changes, read
	// before it first started.
	sysctlFile = "sysctls"
	// createdFile lists host directories that did not exist before the
	// kubelet created them (it hard-codes a few paths outside --root-dir).
	createdFile = "created"
)

// kubeletHostDirs are the paths outside its --root-dir the kubelet creates:
// the device-plugin socket directory (pluginapi.DevicePluginPath) and the
// container log links.
var kubeletHostDirs = []string{"/var/lib/kubelet", "/var/log/containers"}

// recordMissingDirs notes which of kubeletHostDirs do not exist yet, so
// that cleanup removes only what the run created. An existing record is
// kept: it is the one from before the first kubelet.
func recordMissingDirs(dir string) error {
	path := filepath.Join(dir, createdFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var missing []string
	for _, d := range kubeletHostDirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, d)
		}
	}
	return writeFileSync(path, strings.Join(missing, "\n"))
}

// denialSocketDir is where stockade shims listen for their denial stream;
// the sockets have random names, so one left by a killed shim can only be
// told by its age and by nobody answering on it.
const denialSocketDir = "/run/stockade/denials"

// deadDenialSockets removes the denial sockets created since the run began
// (the harness-dir file's time) on which nothing listens any more: those of
// the run's shims that were killed. A live socket is never touched.
func deadDenialSockets(dir string) error {
	st, err := os.Stat(filepath.Join(dir, harnessDirFile))
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir(denialSocketDir)
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || info.Mode()&os.ModeSocket == 0 || info.ModTime().Before(st.ModTime()) {
			continue
		}
		path := filepath.Join(denialSocketDir, e.Name())
		conn, err := net.Dial("unix", path)
		if err == nil {
			conn.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeCreatedDirs removes the directories the run created. The kubelet
// puts only its device-plugin socket under /var/lib/kubelet when its root
// is elsewhere; the log directory must be empty once its links are gone.
func removeCreatedDirs(dir string) error {
	var errs []error
	for _, d := range strings.Fields(readState(dir, createdFile)) {
		var err error
		if d == "/var/lib/kubelet" {
			err = os.RemoveAll(d)
		} else if err = os.Remove(d); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s, created by the kubelet: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// containerdLeftovers removes what a killed private containerd and its
// killed shims leave outside the harness directory, for every sandbox and
// container the directory still knows: CNI's cached results (libcni keeps
// them host-wide, the loopback network's too), the shims' sockets under
// /run/containerd/s, and the stockade shim's per-container run directory.
// A clean teardown leaves none of these; a SIGKILL leaves them all.
func containerdLeftovers(harnessDir string) error {
	if harnessDir == "" {
		return nil
	}
	ids := map[string]bool{}
	for _, d := range []string{
		filepath.Join(harnessDir, "root", "io.containerd.grpc.v1.cri", "sandboxes"),
		filepath.Join(harnessDir, "root", "io.containerd.grpc.v1.cri", "containers"),
		filepath.Join(harnessDir, "state", "io.containerd.runtime.v2.task", "k8s.io"),
	} {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			ids[e.Name()] = true
		}
	}
	var errs []error
	address := filepath.Join(harnessDir, "containerd.sock")
	for id := range ids {
		cached, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", "*-"+id+"-*"))
		// containerd's shim package names a shim's socket after the
		// sha256 of its containerd address, namespace and ID.
		sum := sha256.Sum256([]byte(filepath.Join(address, "k8s.io", id)))
		cached = append(cached, filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:])))
		for _, f := range cached {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		run := filepath.Join("/run/stockade/k8s.io", id)
		errs = append(errs, harness.UnmountUnder(run))
		if err := os.RemoveAll(run); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kubeletSysctls are the sysctls the kubelet sets at start when
// protectKernelDefaults is false (pkg/kubelet/cm setupKernelTunables).
var kubeletSysctls = []string{
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// saveSysctls records the current values unless a record already exists:
// then it is the one from before an earlier kubelet and must be kept.
func saveSysctls(dir string) error {
	path := filepath.Join(dir, sysctlFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var b strings.Builder
	for _, name := range kubeletSysctls {
		v, err := os.ReadFile(sysctlPath(name))
		if err != nil {
			return fmt.Errorf("read sysctl %s: %w", name, err)
		}
		fmt.Fprintf(&b, "%s=%s\n", name, strings.TrimSpace(string(v)))
	}
	return writeFileSync(path, b.String())
}

func restoreSysctls(dir string) error {
	path := filepath.Join(dir, sysctlFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if err := os.WriteFile(sysctlPath(name), []byte(val), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", name, val, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.Remove(path))
	}
	return errors.Join(errs...)
}

// writeFileSync writes a small state file durably: a run killed right after
// must still find it.
func writeFileSync(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readState(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cleanHost removes everything a cluster rooted at dir may have left: its
// processes and the containers' (wherever they were reparented), mounts,
// the CNI bridge and cached CNI results, the cgroup tree, the kubelet's
// /var/log/containers links and the sysctls it changed; then dir itself.
// It is both the last step of a normal teardown and the first step of a run
// that finds dir left by a killed one.
func cleanHost(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	harnessDir := readState(dir, harnessDirFile)
	roots := []string{dir}
	if harnessDir != "" {
		roots = append(roots, harnessDir)
	}
	// A second node (TestTwoNodes) keeps the same files in its directory.
	node2 := filepath.Join(dir, node2Dir)
	harnessDir2 := readState(node2, harnessDirFile)
	if harnessDir2 != "" {
		roots = append(roots, harnessDir2)
	}
	var errs []error

	// Several rounds: a shim killed in the first may leave a container
	// process that only becomes visible as an orphan afterwards.
	for range 5 {
		if killUnder(roots) == 0 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	for _, r := range roots {
		errs = append(errs, harness.UnmountUnder(r))
	}
	errs = append(errs, containerdLeftovers(harnessDir), containerdLeftovers(harnessDir2))
	errs = append(errs, deadDenialSockets(dir))
	for _, d := range []string{dir, node2} {
		if br := readState(d, bridgeFile); br != "" {
			errs = append(errs, harness.DeleteLink(br))
		}
		if nw := readState(d, networkFile); nw != "" {
			stale, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", nw+"-*"))
			for _, f := range stale {
				_ = os.Remove(f)
			}
		}
	}
	errs = append(errs, removeCgroups())
	errs = append(errs, removeLogLinks(roots))
	errs = append(errs, removeCreatedDirs(dir))
	errs = append(errs, restoreSysctls(dir))
	if err := errors.Join(errs...); err != nil {
		// Keep dir (and the state files in it) so that the next run
		// retries instead of forgetting what is left.
		return err
	}
	for _, r := range roots {
		if err := os.RemoveAll(r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killUnder SIGKILLs every process started with an argument under one of
// roots (containerd, shims, the Kubernetes components), every process whose
// root directory is under one (container processes), and every process in
// the kubelet's cgroup tree. It returns how many it signalled.
func killUnder(roots []string) int {
	pids := map[int]bool{}
	for _, cg := range cgroupDirs() {
		_ = filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			if err != nil {
				return nil
			}
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids[pid] = true
				}
			}
			return nil
		})
	}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		root, _ := os.Readlink(filepath.Join("/proc", ent.Name(), "root"))
		for _, r := range roots {
			if strings.Contains(string(cmdline), r+"/") || strings.HasPrefix(root, r+"/") {
				pids[pid] = true
			}
		}
	}
	delete(pids, os.Getpid())
	n := 0
	for pid := range pids {
		if unix.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// cgroupDirs returns the kubelet's cgroup root in every mounted hierarchy
// (cgroup v1 controllers, the named systemd one and the unified one).
func cgroupDirs() []string {
	var out []string
	for _, m := range mounts() {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, filepath.Join(m.Point, cgroupName))
		}
	}
	return out
}

// makeCgroups creates the kubelet's cgroup root in every hierarchy: the
// kubelet refuses to start when its --cgroup-root is missing in one.
func makeCgroups() error { return makeCgroupDirs(cgroupDirs()) }

// makeCgroupDirs creates the cgroups dirs (parents first).
func makeCgroupDirs(dirs []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", d, err)
		}
		// A v1 cpuset cgroup starts with no CPUs and no memory nodes; no
		// process can join one below it until they are copied from above.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			parent, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(d, f), parent, 0o644); err != nil {
				return fmt.Errorf("init %s/%s: %w", d, f, err)
			}
		}
	}
	return nil
}

// removeCgroups removes the cgroup tree below the kubelet's root in every
// hierarchy, deepest first. Processes must be gone: a populated cgroup
// cannot be removed, and the error says which.
func removeCgroups() error { return removeCgroupTrees(cgroupDirs()) }

// removeCgroupTrees removes the cgroups at roots and below, deepest first.
func removeCgroupTrees(roots []string) error {
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			// A cgroup whose last process was just killed may still count
			// it for a moment.
			for range 20 {
				if err = unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) || !errors.Is(err, unix.EBUSY) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeLogLinks deletes the kubelet's /var/log/containers symlinks that
// point into one of roots (a kubelet stopped with pods left removes none).
func removeLogLinks(roots []string) error {
	entries, err := os.ReadDir("/var/log/containers")
	if err != nil {
		return nil
	}
	var errs []error
	for _, ent := range entries {
		p := filepath.Join("/var/log/containers", ent.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue
		}
		for _, r := range roots {
			if strings.HasPrefix(target, r+"/") {
				if err := os.Remove(p); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// mounts lists this process's mounts (none if mountinfo cannot be read:
// the callers look for leftovers, and an unreadable table shows none).
func mounts() []harness.Mount {
	ms, _ := harness.Mounts()
	return ms
}
