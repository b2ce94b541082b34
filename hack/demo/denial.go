package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// sinkWait is how long the demo waits for the denial to reach the sink: the
// shim writes records asynchronously, aggregated over a window (1s default).
const sinkWait = 5 * time.Second

// record is the part of a sink line the demo prints.
type record struct {
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	Pod       string    `json:"pod"`
	Container string    `json:"container"`
	Pid       int       `json:"pid"`
	Comm      string    `json:"comm"`
	Syscall   string    `json:"syscall"`
	Action    string    `json:"action"`
	Errno     string    `json:"errno"`
	Mode      string    `json:"mode"`
	Count     uint64    `json:"count"`
}

// triggerDenial runs a command the profile denies inside the container and
// prints what the container saw and what the denial sink recorded.
func triggerDenial(ctx context.Context, env *harness.Env, rs runtimeapi.RuntimeServiceClient, ctr string) error {
	fmt.Printf("\ninside the container: %s\n", strings.Join(deniedCommand, " "))
	out, err := rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctr, Cmd: deniedCommand, Timeout: 10})
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	msg := strings.TrimSpace(string(out.Stderr) + string(out.Stdout))
	fmt.Printf("  exit %d: %s\n", out.ExitCode, msg)

	// <dir>/<namespace>_<pod>_<uid>/<container>.log, as config/denials.go documents.
	sink := filepath.Join(env.LogDir, podNamespace+"_"+podName+"_"+podUID, containerName+".log")
	var recs []string
	for deadline := time.Now().Add(sinkWait); time.Now().Before(deadline) && len(recs) == 0; {
		time.Sleep(250 * time.Millisecond)
		recs = readSink(sink)
	}
	if len(recs) == 0 {
		fmt.Println("\ndenial streaming: no record (not yet wired)")
		return nil
	}
	fmt.Printf("\ndenial record(s) in %s:\n", sink)
	for _, line := range recs {
		fmt.Println("  " + describe(line))
	}
	return nil
}

// readSink returns the lines of a sink file, none if it does not exist yet.
func readSink(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// describe renders one record as a line; a line that is not a record is
// shown as it is, so the demo never hides what the sink holds.
func describe(line string) string {
	var r record
	if err := json.Unmarshal([]byte(line), &r); err != nil || (r.Syscall == "" && r.Type == "") {
		return line
	}
	if r.Type != "" {
		return fmt.Sprintf("%s %s record: %s", r.Time.Format(time.TimeOnly), r.Type, line)
	}
	s := fmt.Sprintf("%s %s/%s pid %d (%s): %s %s", r.Time.Format(time.TimeOnly), r.Pod, r.Container, r.Pid, r.Comm, r.Syscall, r.Action)
	if r.Errno != "" {
		s += " " + r.Errno
	}
	if r.Mode != "" {
		s += ", mode " + r.Mode
	}
	if r.Count > 1 {
		s += fmt.Sprintf(", %d times", r.Count)
	}
	return s
}
