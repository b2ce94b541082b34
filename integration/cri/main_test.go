// Package cri tests stockade the way Kubernetes drives it: through the CRI
// API (k8s.io/cri-api runtime v1) on containerd's socket, with the requests
// shaped as the kubelet shapes them — pod metadata, a log directory named
// <namespace>_<name>_<uid>, a pod cgroup parent, RuntimeDefault seccomp,
// pod-level network and IPC namespaces, kubelet's masked and read-only
// paths, its termination-log and /etc/hosts mounts.
//
// The runtime handler under test is env.Handler: "stockade", or "runc" with
// STOCKADE_TEST_RUNTIME=runc, the baseline every test that is not about a
// stockade promise must also pass against.
package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stockade-dev/stockade/integration/harness"
)

func TestMain(m *testing.M) {
	code := harness.Main(m)
	// Pod cgroups are the kubelet's to create and remove; the tests do it
	// per pod, this removes the package's top-level parent.
	if err := removeCgroup(cgroupRoot); err != nil {
		fmt.Fprintln(os.Stderr, "cri: remove cgroup parent:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// cgroupRoot stands in for the kubelet's /kubepods (cgroupfs driver): pods
// get <cgroupRoot>/pod<uid> as their cgroup parent.
var cgroupRoot = fmt.Sprintf("/stockade-cri-%d", os.Getpid())

// cgroupMounts returns each mounted cgroup hierarchy once (v1 controllers
// are mounted under several names through symlinks, e.g. cpu -> cpu,cpuacct).
func cgroupMounts() []string {
	entries, _ := filepath.Glob("/sys/fs/cgroup/*")
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		real, err := filepath.EvalSymlinks(e)
		if err != nil || seen[real] {
			continue
		}
		if fi, err := os.Stat(real); err == nil && fi.IsDir() {
			seen[real] = true
			out = append(out, real)
		}
	}
	return out
}

// removeCgroup removes a cgroup directory and its children in every
// hierarchy, deepest first, as the kubelet removes a pod's cgroup. A cgroup
// that still has processes refuses (EBUSY), which the error reports.
func removeCgroup(rel string) error {
	var errs []error
	for _, root := range cgroupMounts() {
		top := filepath.Join(root, rel)
		var dirs []string
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
