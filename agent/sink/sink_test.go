package sink

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type collect struct {
	syscalls []string
	bad      []string
	gone     []string
}

func (c *collect) PodGone(ns, pod string) { c.gone = append(c.gone, ns+"/"+pod) }

func (c *collect) Record(r *Record) {
	if r.Type == TypeGap {
		c.syscalls = append(c.syscalls, "gap")
		return
	}
	c.syscalls = append(c.syscalls, r.Syscall)
}
func (c *collect) BadLine(_ string, reason string, _ error) { c.bad = append(c.bad, reason) }

func rec(sys string) string {
	return `{"time":"2026-12-03T10:00:00Z","namespace":"shop","pod":"web-1","pod_uid":"u1","container":"app","syscall":"` + sys + `","action":"denied","errno":"EPERM","count":1}` + "\n"
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func poll(t *testing.T, tl *Tailer) *collect {
	t.Helper()
	c := &collect{}
	if err := tl.Poll(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTailerReadsEachLineOnceAcrossRestartAndRotation(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sink")
	state := filepath.Join(root, "state", "sink.json")
	live := filepath.Join(dir, "shop_web-1_u1", "app.log")

	if c := poll(t, &Tailer{Dir: dir, StatePath: state}); len(c.syscalls) != 0 {
		t.Fatalf("no sink yet: got %v", c.syscalls)
	}
	appendTo(t, live, rec("unshare")+rec("mount"))
	tl := &Tailer{Dir: dir, StatePath: state}
	if c := poll(t, tl); strings.Join(c.syscalls, ",") != "unshare,mount" {
		t.Fatalf("first poll: %v", c.syscalls)
	}
	// A half-written line is left for later.
	appendTo(t, live, rec("keyctl")+`{"time":"2026-12-03T10:00:01Z","syscall":"ptr`)
	if c := poll(t, tl); strings.Join(c.syscalls, ",") != "keyctl" {
		t.Fatalf("partial line: %v", c.syscalls)
	}
	// Restart: a new tailer on the same state reads nothing old.
	tl = &Tailer{Dir: dir, StatePath: state}
	if c := poll(t, tl); len(c.syscalls) != 0 {
		t.Fatalf("after restart: read again %v", c.syscalls)
	}
	// The line is finished, then the file rotated and a new live one
	// started, all between two polls: nothing is lost or repeated, and the
	// rotated file comes first.
	appendTo(t, live, `ace","action":"denied"}`+"\n"+rec("bpf"))
	if err := os.Rename(live, live+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, live, rec("setns"))
	tl = &Tailer{Dir: dir, StatePath: state}
	if c := poll(t, tl); strings.Join(c.syscalls, ",") != "ptrace,bpf,setns" {
		t.Fatalf("after rotation and restart: %v", c.syscalls)
	}
	if c := poll(t, tl); len(c.syscalls) != 0 {
		t.Fatalf("nothing new: got %v", c.syscalls)
	}
	// A removed pod directory is forgotten.
	if err := os.RemoveAll(filepath.Dir(live)); err != nil {
		t.Fatal(err)
	}
	c := poll(t, tl)
	if len(tl.files) != 0 {
		t.Fatalf("positions of removed files kept: %v", tl.files)
	}
	if strings.Join(c.gone, ",") != "shop/web-1" {
		t.Errorf("pods gone: %v", c.gone)
	}
	if c := poll(t, tl); len(c.gone) != 0 {
		t.Errorf("pod reported gone twice: %v", c.gone)
	}
}

func TestTailerCountsBadLinesAndGoesOn(t *testing.T) {
	root := t.TempDir()
	live := filepath.Join(root, "shop_web-1_u1", "app.log")
	long := strings.Repeat("x", maxLine+chunk+10)
	appendTo(t, live, "not json\n"+rec("unshare")+`{"type":"weird"}`+"\n"+long+"\n"+
		`{"type":"gap","time":"2026-12-03T10:00:00Z","dropped":5}`+"\n"+"\n"+rec("mount"))
	tl := &Tailer{Dir: root}
	c := poll(t, tl)
	if got := strings.Join(c.syscalls, ","); got != "unshare,gap,mount" {
		t.Errorf("records: %s", got)
	}
	if got := strings.Join(c.bad, ","); got != "malformed,unknown_type,too_long" {
		t.Errorf("bad lines: %s", got)
	}
}

func TestTailerSkipsOverlongLineAcrossPolls(t *testing.T) {
	root := t.TempDir()
	live := filepath.Join(root, "p_q_r", "c.log")
	appendTo(t, live, strings.Repeat("y", maxLine+1))
	tl := &Tailer{Dir: root}
	if c := poll(t, tl); strings.Join(c.bad, ",") != "too_long" {
		t.Fatalf("bad: %v", c.bad)
	}
	appendTo(t, live, strings.Repeat("y", 100)+"\n"+rec("bpf"))
	c := poll(t, tl)
	if len(c.bad) != 0 || strings.Join(c.syscalls, ",") != "bpf" {
		t.Fatalf("after the long line: bad %v records %v", c.bad, c.syscalls)
	}
}

func TestTailerDamagedStateStartsOver(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(root, "state.json")
	appendTo(t, filepath.Join(root, "sink", "a_b_c", "c.log"), rec("bpf"))
	if err := os.WriteFile(state, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	tl := &Tailer{Dir: filepath.Join(root, "sink"), StatePath: state}
	c := &collect{}
	if err := tl.Poll(c); err == nil {
		t.Fatal("damaged state not reported")
	}
	// The agent goes on: the next poll reads from the start.
	if c := poll(t, tl); strings.Join(c.syscalls, ",") != "bpf" {
		t.Fatalf("after damaged state: %v", c.syscalls)
	}
}
