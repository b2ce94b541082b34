package denials

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/integration/harness"
	"github.com/stockade-dev/stockade/shim/denials"
)

// deniedProbes are the calls the baseline denies for a default container,
// with the syscall each makes.
var deniedProbes = map[string]string{
	"unshare-user":   "unshare",
	"mount":          "mount",
	"keyctl":         "keyctl",
	"io_uring_setup": "io_uring_setup",
	"userfaultfd":    "userfaultfd",
	"fsopen":         "fsopen",
}

func probeScript() string {
	var b strings.Builder
	for p := range deniedProbes {
		fmt.Fprintf(&b, "probe %s; ", p)
	}
	b.WriteString("probe clone3; unshare -U true || echo unshare-cmd-failed; echo end")
	return b.String()
}

func TestEnforceDeniesAndRecordsExactly(t *testing.T) {
	env := stockadeEnv(t)
	id, code, out := run(t, env, probeScript())
	if code != 0 || !strings.Contains(out, "end") {
		t.Fatalf("exit %d: %s", code, out)
	}
	for p := range deniedProbes {
		if !strings.Contains(out, p+" errno=EPERM") {
			t.Errorf("%s: want EPERM, got:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "clone3 errno=ENOSYS") {
		t.Errorf("clone3 must fail with ENOSYS (libcs fall back to clone): %s", out)
	}
	if !strings.Contains(out, "unshare-cmd-failed") {
		t.Errorf("busybox unshare -U succeeded: %s", out)
	}

	// Records: exactly one per denied syscall (unshare twice: probe and the
	// busybox command, folded or not), none for clone3.
	rs := records(t, logPath(env, "", id), uint64(len(deniedProbes)+1))
	got := map[string]uint64{}
	var lastSeq uint64
	for _, r := range rs {
		if r.Type != "" {
			t.Errorf("unexpected %s record: %+v", r.Type, r)
			continue
		}
		got[r.Syscall] += r.Count
		if r.ContainerID != id || r.Pod != id || r.Namespace != "stockade-test" || r.Container != id {
			t.Errorf("attribution wrong: %+v", r)
		}
		if r.Action != denials.ActionDenied || r.Errno != "EPERM" || r.Mode != denial.ModeEnforce || r.Profile != "stockade-baseline" {
			t.Errorf("verdict fields wrong: %+v", r)
		}
		if r.Pid <= 0 || r.Comm == "" || r.Arch != "amd64" || r.SyscallNr == 0 || len(r.Args) != 6 || r.Node == "" {
			t.Errorf("process fields missing: %+v", r)
		}
		if r.Seq <= lastSeq {
			t.Errorf("seq %d after %d", r.Seq, lastSeq)
		}
		lastSeq = r.Seq
	}
	for _, sc := range deniedProbes {
		want := uint64(1)
		if sc == "unshare" {
			want = 2
		}
		if got[sc] != want {
			t.Errorf("%s: %d denials recorded, want %d (records: %v)", sc, got[sc], want, got)
		}
	}
	if got["clone3"] != 0 {
		t.Error("clone3's ENOSYS was recorded as a denial")
	}
	if len(got) != len(deniedProbes) {
		t.Errorf("recorded syscalls %v, want exactly %v", got, deniedProbes)
	}

	// The operator's view.
	cli := stockadeCLI(t, env, "denials", "--dir", env.LogDir, "-n", "stockade-test", "--pod", id, "-o", "json")
	if n := strings.Count(cli, `"syscall":"keyctl"`); n != 1 {
		t.Errorf("stockade denials -o json shows keyctl %d times:\n%s", n, cli)
	}
	table := stockadeCLI(t, env, "denials", "--dir", env.LogDir, "-A", "--pod", id)
	if !strings.Contains(table, "io_uring_setup") || !strings.Contains(table, "WHAT") {
		t.Errorf("stockade denials table:\n%s", table)
	}
}

func TestComplainModeAllowsAndRecords(t *testing.T) {
	env := stockadeEnv(t)
	setNodeConfig(t, env, "", `mode = "complain"`)
	id, code, out := run(t, env, "probe unshare-user; probe keyctl; probe io_uring_setup; probe userfaultfd; probe clone3; echo end")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	// userfaultfd is left to the kernel, which refuses it without
	// CAP_SYS_PTRACE while vm.unprivileged_userfaultfd is 0: the record
	// below shows seccomp let it through.
	for _, p := range []string{"unshare-user ok", "keyctl ok", "io_uring_setup ok", "clone3 errno=ENOSYS"} {
		if !strings.Contains(out, p) {
			t.Errorf("complain mode: want %q in:\n%s", p, out)
		}
	}
	rs := records(t, logPath(env, "", id), 4)
	got := map[string]bool{}
	for _, r := range rs {
		got[r.Syscall] = true
		if r.Action != denials.ActionAllowed || r.Errno != "" || r.Mode != denial.ModeComplain {
			t.Errorf("complain record: %+v", r)
		}
	}
	for _, sc := range []string{"unshare", "keyctl", "io_uring_setup", "userfaultfd"} {
		if !got[sc] {
			t.Errorf("no complain record for %s (got %v)", sc, got)
		}
	}
}

func TestOrdinaryWorkloadUnaffected(t *testing.T) {
	env := stockadeEnv(t)
	// The client retries until the listener is up (a loaded node can take
	// longer than any fixed sleep), and the reader until the data is in.
	script := `set -e
echo data > /tmp/f; cat /tmp/f; cp /tmp/f /tmp/g; rm /tmp/f; ls / >/dev/null
mkdir -p /tmp/d && cd /tmp/d && touch a b && ls | wc -l
(nc -l -p 8080 > /tmp/got &)
i=0; until echo over-loopback | nc 127.0.0.1 8080; do i=$((i+1)); [ $i -lt 600 ]; sleep 0.1; done
i=0; until grep -q over-loopback /tmp/got; do i=$((i+1)); [ $i -lt 600 ]; sleep 0.1; done; cat /tmp/got
id -u; uname -r >/dev/null; date >/dev/null; ps >/dev/null; wc -c /bin/busybox >/dev/null
echo finished`
	id, code, out := run(t, env, script)
	if code != 0 || !strings.Contains(out, "over-loopback") || !strings.Contains(out, "finished") {
		t.Fatalf("ordinary workload failed: exit %d\n%s", code, out)
	}
	if rs := harness.DenialRecords(t, logPath(env, "", id)); len(rs) != 0 {
		t.Errorf("ordinary workload produced denials: %+v", rs)
	}
}

func TestTwoPodsNeverMix(t *testing.T) {
	env := stockadeEnv(t)
	var wg sync.WaitGroup
	ids := make([]string, 2)
	for i, script := range []string{"probe -n 300 keyctl; probe mount", "probe -n 300 userfaultfd; probe fsopen"} {
		wg.Add(1)
		go func(i int, script string) {
			defer wg.Done()
			ids[i], _, _ = run(t, env, script)
		}(i, script)
	}
	wg.Wait()
	want := []map[string]uint64{{"keyctl": 300, "mount": 1}, {"userfaultfd": 300, "fsopen": 1}}
	for i, id := range ids {
		got := map[string]uint64{}
		for _, r := range records(t, logPath(env, "", id), 301) {
			if r.ContainerID != id || r.Pod != id {
				t.Errorf("record of another container in %s's log: %+v", id, r)
			}
			got[r.Syscall] += r.Count
		}
		if fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Errorf("container %d: recorded %v, want %v", i, got, want[i])
		}
	}
}
