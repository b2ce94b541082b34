package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/shim/denials"
)

var denialsNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

func testEnv() denialsEnv {
	return denialsEnv{now: func() time.Time { return denialsNow }, poll: 5 * time.Millisecond}
}

func drec(ns, pod, ctr string, seq uint64, age time.Duration) *denials.Record {
	return &denials.Record{
		Time: denialsNow.Add(-age), Node: "n1", Namespace: ns, Pod: pod, PodUID: pod + "-uid",
		Container: ctr, ContainerID: ctr + "-id", Pid: 4242, Comm: "curl", Syscall: "mount",
		Action: denials.ActionDenied, Errno: "EPERM", Mode: denial.ModeEnforce, Seq: seq, Count: 1,
	}
}

func writeRecs(t *testing.T, s *denials.FileSink, recs ...*denials.Record) {
	t.Helper()
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(r, append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
}

func runD(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runDenials(args, &out, &errb, testEnv())
	return code, out.String(), errb.String()
}

// fixture writes records for two namespaces, one with a gap record.
func fixture(t *testing.T) string {
	root := filepath.Join(t.TempDir(), "log")
	s := denials.NewFileSink(root, 1<<20, 5)
	gap := drec("shop", "web-0", "app", 0, time.Minute)
	gap.Type, gap.Dropped, gap.Count, gap.Syscall, gap.Pid, gap.Comm = denials.TypeGap, 17, 0, "", 0, ""
	writeRecs(t, s,
		drec("shop", "web-0", "app", 1, time.Hour),
		drec("shop", "web-0", "sidecar", 1, 2*time.Minute),
		gap,
		drec("shop", "api-1", "app", 1, time.Minute),
		drec("default", "solo-id", "solo-id", 1, time.Minute),
		drec("kube-system", "dns-0", "coredns", 1, time.Minute),
	)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestDenialsRegistered(t *testing.T) {
	if _, ok := commands["denials"]; !ok {
		t.Fatal("denials command not registered")
	}
}

func TestDenialsFilters(t *testing.T) {
	root := fixture(t)
	for _, tc := range []struct {
		args []string
		want []string // "namespace/pod/container" of the rows, in any order
	}{
		{nil, []string{"default/solo-id/solo-id"}},
		{[]string{"-n", "shop"}, []string{"shop/web-0/app", "shop/web-0/sidecar", "shop/web-0/app", "shop/api-1/app"}},
		{[]string{"--namespace", "shop", "--pod", "web-0"}, []string{"shop/web-0/app", "shop/web-0/sidecar", "shop/web-0/app"}},
		{[]string{"-n", "shop", "--container", "app"}, []string{"shop/web-0/app", "shop/web-0/app", "shop/api-1/app"}},
		{[]string{"-A", "--container", "coredns"}, []string{"kube-system/dns-0/coredns"}},
		{[]string{"--all-namespaces"}, []string{"shop/web-0/app", "shop/web-0/sidecar", "shop/web-0/app", "shop/api-1/app", "default/solo-id/solo-id", "kube-system/dns-0/coredns"}},
		{[]string{"-A", "--since", "10m"}, []string{"shop/web-0/sidecar", "shop/web-0/app", "shop/api-1/app", "default/solo-id/solo-id", "kube-system/dns-0/coredns"}},
	} {
		code, out, errOut := runD(t, append([]string{"--dir", root, "-o", "json"}, tc.args...)...)
		if code != 0 {
			t.Errorf("%v: exit %d, stderr %s", tc.args, code, errOut)
			continue
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var r denials.Record
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%v: output line %q: %v", tc.args, l, err)
			}
			got = append(got, r.Namespace+"/"+r.Pod+"/"+r.Container)
		}
		if !sameMultiset(got, tc.want) {
			t.Errorf("%v: got %v, want %v", tc.args, got, tc.want)
		}
	}
}

func sameMultiset(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return true
}

func TestDenialsTable(t *testing.T) {
	root := fixture(t)
	code, out, _ := runD(t, "--dir", root, "-n", "shop", "--pod", "web-0")
	if code != 0 {
		t.Fatal(code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "TIME NAMESPACE POD CONTAINER SOURCE WHAT ACTION COUNT PID COMM" {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 10 || f[1] != "shop" || f[4] != "seccomp" || f[5] != "mount" || f[6] != "denied" || f[7] != "1" || f[8] != "4242" || f[9] != "curl" {
		t.Errorf("row %q", lines[1])
	}
	var gapRow string
	for _, l := range lines {
		if strings.Contains(l, " lost ") {
			gapRow = l
		}
	}
	if f := strings.Fields(gapRow); len(f) != 10 || f[5] != "-" || f[7] != "17" || f[8] != "-" {
		t.Errorf("gap row %q", gapRow)
	}
}

func TestDenialsMalformedLines(t *testing.T) {
	root := fixture(t)
	path := denials.LogPath(root, denial.Attribution{Namespace: "shop", Pod: "web-0", PodUID: "web-0-uid", Container: "app"})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(drec("shop", "web-0", "app", 9, 0))
	// A garbage line, a good one, then a line cut by a crash.
	_, _ = f.WriteString("not json\n" + string(good) + "\n" + `{"time":"2026-03-04T1`)
	_ = f.Close()
	code, out, errOut := runD(t, "--dir", root, "-n", "shop", "--pod", "web-0", "--container", "app", "-o", "json")
	if code != 0 {
		t.Fatal(code, errOut)
	}
	for _, want := range []string{path + ":3: skipping malformed record", path + ":5: skipping malformed record"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("printed %d records, want the 3 good ones:\n%s", n, out)
	}
}

func TestDenialsRotationOrder(t *testing.T) {
	root := t.TempDir()
	a := denial.Attribution{Namespace: "shop", Pod: "web-0", PodUID: "u", Container: "app"}
	live := denials.LogPath(root, a)
	if err := os.MkdirAll(filepath.Dir(live), 0o750); err != nil {
		t.Fatal(err)
	}
	// Numeric, not lexical, order: .log.10 is older than .log.9 and .log.2.
	for i, name := range []string{denials.RotatedName(live, 10), denials.RotatedName(live, 9), denials.RotatedName(live, 2), denials.RotatedName(live, 1), live} {
		b, _ := json.Marshal(drec("shop", "web-0", "app", uint64(i+1), 0))
		if err := os.WriteFile(name, append(b, '\n'), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(live+".tmp", []byte("junk\n"), 0o640) // not a rotated copy
	code, out, errOut := runD(t, "--dir", root, "-n", "shop", "-o", "json")
	if code != 0 || errOut != "" {
		t.Fatal(code, errOut)
	}
	if got := seqs(t, out); got != "1 2 3 4 5" {
		t.Errorf("order %s, want 1 2 3 4 5", got)
	}
}

func seqs(t *testing.T, out string) string {
	t.Helper()
	var s []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var r denials.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		s = append(s, strconv.FormatUint(r.Seq, 10))
	}
	return strings.Join(s, " ")
}

func TestDenialsNothingToRead(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	code, out, errOut := runD(t, "--dir", missing)
	if code != 0 || out != "" || !strings.Contains(errOut, "does not exist") {
		t.Errorf("missing dir: %d %q %q", code, out, errOut)
	}
	root := fixture(t)
	code, out, errOut = runD(t, "--dir", root, "-n", "nobody")
	if code != 0 || out != "" || !strings.Contains(errOut, `no denial records in `+root+` match (namespace "nobody")`) || !strings.Contains(errOut, "use -A") {
		t.Errorf("no match: %d %q %q", code, out, errOut)
	}
}

func TestDenialsUsageAndConfig(t *testing.T) {
	for _, args := range [][]string{{"-o", "yaml"}, {"extra"}, {"--since", "-5m"}, {"--bogus"}} {
		if code, _, _ := runD(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	root := fixture(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("[denials]\ndir = \""+root+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runD(t, "--config", cfg, "-n", "kube-system"); code != 0 || !strings.Contains(out, "coredns") {
		t.Errorf("--config: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runD(t, "--config", filepath.Join(t.TempDir(), "missing.toml")); code != 1 {
		t.Errorf("missing --config: exit %d, want 1", code)
	}
}

// lockedBuffer is written by the following goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestDenialsFollowAcrossRotation(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log") // created only after -f started
	var out, errOut lockedBuffer
	stop := make(chan struct{})
	done := make(chan int)
	env := testEnv()
	env.stop = stop
	go func() {
		done <- runDenials([]string{"--dir", root, "-n", "shop", "-f", "-o", "json"}, &out, &errOut, env)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(errOut.String(), "waiting for records") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}

	r := drec("shop", "web-0", "app", 100, 0)
	line, _ := json.Marshal(r)
	// Two records per file, five files kept: the writer rotates every
	// other record, at times several times between two polls.
	s := denials.NewFileSink(root, int64(2*(len(line)+1)), 5)
	var want []string
	for i := 1; i <= 40; i++ {
		r := drec("shop", "web-0", "app", uint64(i), 0)
		writeRecs(t, s, r, drec("other", "x", "y", uint64(i), 0))
		want = append(want, strconv.Itoa(i))
		if i%4 == 0 {
			time.Sleep(15 * time.Millisecond) // let the follower catch up now and then
		}
	}
	deadline = time.Now().Add(5 * time.Second)
	for seqs(t, out.String()) != strings.Join(want, " ") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	if got := seqs(t, out.String()); got != strings.Join(want, " ") {
		t.Errorf("followed %s\nwant     %s\nstderr %s", got, strings.Join(want, " "), errOut.String())
	}
	if !strings.Contains(errOut.String(), "waiting for records") {
		t.Errorf("no waiting notice: %q", errOut.String())
	}
}
