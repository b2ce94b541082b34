package harness

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ContainerLeaks lists what is left on the host of a removed container id
// of the client namespace: mounts naming it, its cgroups, the runtime's state
// directory, processes in its cgroup, and (stockade) a user-namespace lease
// naming it (a container outside a Kubernetes pod is its own pod).
func (e *Env) ContainerLeaks(id string) []string {
	var leaks []string
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(mi))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 4 && strings.Contains(f[4], "/"+id+"/") {
				leaks = append(leaks, "mount "+f[4])
			}
		}
	}
	cgs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", Namespace, id))
	if one, err := os.Stat(filepath.Join("/sys/fs/cgroup", Namespace, id)); err == nil && one.IsDir() {
		cgs = append(cgs, filepath.Join("/sys/fs/cgroup", Namespace, id))
	}
	for _, d := range cgs {
		leaks = append(leaks, "cgroup "+d)
	}
	state := filepath.Join("/run/stockade", Namespace, id)
	if e.Handler == HandlerRunc {
		state = filepath.Join(e.RuncRoot(), Namespace, id)
	}
	if _, err := os.Stat(state); err == nil {
		leaks = append(leaks, "state "+state)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("/"+Namespace+"/"+id+"\n")) {
			leaks = append(leaks, "process "+filepath.Base(filepath.Dir(p)))
		}
	}
	_ = filepath.WalkDir(filepath.Join(e.Dir, "stockade"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || filepath.Base(filepath.Dir(path)) != "leases" {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && (strings.Contains(path, id) || bytes.Contains(b, []byte(id))) {
			leaks = append(leaks, "userns lease "+path)
		}
		return nil
	})
	return leaks
}

// AssertNoLeaks fails t if ContainerLeaks(id) is not empty. Teardown is
// asynchronous in places (containerd removes the shim's view after the
// reply), so it polls for a while before failing.
func (e *Env) AssertNoLeaks(t testing.TB, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		leaks := e.ContainerLeaks(id)
		if len(leaks) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s left behind: %s", id, strings.Join(leaks, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
