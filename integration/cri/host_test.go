package cri

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// What the host shows of pods: shim processes, mounts, cgroups, processes.
// Read from /proc and /sys directly, because "nothing left behind" has to be
// judged by the host, not by the runtime that might have leaked.

// shimProc is a shim process started by this test's containerd.
type shimProc struct {
	Pid       int
	Binary    string // base name of argv[0]
	Namespace string // its -namespace argument
}

// readArgv returns a process's argv, or nil if it is gone.
func readArgv(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func argValue(argv []string, flag string) string {
	for i, a := range argv {
		if (a == "-"+flag || a == "--"+flag) && i+1 < len(argv) {
			return argv[i+1]
		}
		if v, ok := strings.CutPrefix(a, "-"+flag+"="); ok {
			return v
		}
	}
	return ""
}

// criShims returns the shims of env's containerd serving the CRI namespace.
func criShims(env *harness.Env) (map[int]shimProc, error) {
	pids, err := env.ShimPIDs()
	if err != nil {
		return nil, fmt.Errorf("list shims: %w", err)
	}
	out := map[int]shimProc{}
	for pid := range pids {
		argv := readArgv(pid)
		if argv == nil || argValue(argv, "namespace") != harness.CRINamespace {
			continue
		}
		out[pid] = shimProc{Pid: pid, Binary: filepath.Base(argv[0]), Namespace: harness.CRINamespace}
	}
	return out, nil
}

// shimOf returns the shim serving the container whose init is pid: both
// shims are the parent of their containers' processes (runc's shim as a
// subreaper, stockade's as libcontainer's direct parent).
func shimOf(env *harness.Env, pid int) (shimProc, error) {
	ppid, err := parentPid(pid)
	if err != nil {
		return shimProc{}, err
	}
	argv := readArgv(ppid)
	if argv == nil || argValue(argv, "address") != env.Address || !strings.Contains(filepath.Base(argv[0]), "containerd-shim") {
		return shimProc{}, fmt.Errorf("parent %d of pid %d is not a shim of this containerd: %q", ppid, pid, argv)
	}
	return shimProc{Pid: ppid, Binary: filepath.Base(argv[0]), Namespace: argValue(argv, "namespace")}, nil
}

func parentPid(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	v, ok := statusField(string(b), "PPid")
	if !ok {
		return 0, fmt.Errorf("pid %d: no PPid in status", pid)
	}
	return strconv.Atoi(v)
}

// statusField returns a field of /proc/<pid>/status.
func statusField(status, key string) (string, bool) {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// shimSocket reads the shim address containerd recorded in a task's bundle.
func shimSocket(env *harness.Env, id string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundleDir(env, id), "bootstrap.json"))
	if err != nil {
		return "", fmt.Errorf("shim bootstrap of %s: %w", id, err)
	}
	var bs struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(b, &bs); err != nil {
		return "", fmt.Errorf("shim bootstrap of %s: %w", id, err)
	}
	return strings.TrimPrefix(bs.Address, "unix://"), nil
}

// bundleDir is containerd's task bundle of a CRI container.
func bundleDir(env *harness.Env, id string) string {
	return filepath.Join(env.Dir, "state", "io.containerd.runtime.v2.task", harness.CRINamespace, id)
}

// runtimeStateDir is where the runtime under test keeps container state.
func runtimeStateDir(env *harness.Env, id string) string {
	if env.Handler == harness.HandlerRunc {
		return filepath.Join(env.RuncRoot(), harness.CRINamespace, id)
	}
	return filepath.Join("/run/stockade", harness.CRINamespace, id)
}

// mountPoints returns the mount points under dir (from mountinfo).
func mountPoints(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out, sc.Err()
}

// processesIn returns the pids of processes whose cgroup path mentions id.
func processesIn(id string) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	var out []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("/"+id)) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// logLine is one line of a CRI container log:
// "<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>".
type logLine struct {
	Time    time.Time
	Stream  string
	Partial bool
	Content string
}

// readCRILog parses a CRI log file strictly: a line in any other format is
// an error, because the kubelet (kubectl logs) would choke on it too.
func readCRILog(path string) ([]logLine, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []logLine
	for i, raw := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if raw == "" && len(data) == 0 {
			break
		}
		parts := strings.SplitN(raw, " ", 4)
		if len(parts) < 3 {
			return nil, fmt.Errorf("%s line %d: not CRI format: %q", path, i+1, raw)
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: timestamp: %w", path, i+1, err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" {
			return nil, fmt.Errorf("%s line %d: stream %q", path, i+1, parts[1])
		}
		if parts[2] != "P" && parts[2] != "F" {
			return nil, fmt.Errorf("%s line %d: tag %q", path, i+1, parts[2])
		}
		l := logLine{Time: ts, Stream: parts[1], Partial: parts[2] == "P"}
		if len(parts) == 4 {
			l.Content = parts[3]
		}
		out = append(out, l)
	}
	return out, nil
}
