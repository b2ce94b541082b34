package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stockade-dev/stockade/shim/denials"
)

func TestTermSafe(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nginx", "nginx"},
		{"", ""},
		{"\r\x1b[2K\x1b[1A\x1b[2K", `\x0d\x1b[2K\x1b[1A\x1b[2K`},
		{"a\tb\nc\x00d\x7f", `a\x09b\x0ac\x00d\x7f`},
		{"csi\u009b31m", `csi\u009b31m`},           // C1 CSI, as UTF-8
		{"raw\x9b31m", `raw\x9b31m`},               // C1 CSI as a lone byte: invalid UTF-8
		{"\xff\xfe", `\xff\xfe`},                   // invalid UTF-8
		{"evil\u202egnp.exe", `evil\u202egnp.exe`}, // bidi override
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"line\u2028sep", `line\u2028sep`},
		{`back\x1bslash`, `back\\x1bslash`}, // a literal backslash cannot fake an escape
		{"wörker-日本", "wörker-日本"},          // printable Unicode stays
	} {
		if got := termSafe(tc.in); got != tc.want {
			t.Errorf("termSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDenialsTableEscapesWorkloadFields is issue 21 item 4: a comm of
// "\r ESC[2K ESC[1A ESC[2K" erased an earlier row on the operator's
// terminal. Every field from the record must reach the table escaped; the
// JSON output stays byte for byte what the file holds.
func TestDenialsTableEscapesWorkloadFields(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log")
	s := denials.NewFileSink(root, 1<<20, 5)
	innocent := drec("shop", "web-0", "app", 1, 2*time.Minute)
	evil := drec("shop", "web-0", "app", 2, time.Minute)
	evil.Comm = "\r\x1b[2K\x1b[1A\x1b[2K"
	// Names a workload cannot normally choose, but the reader must not
	// trust the file to have been written by a well-behaved writer. (The
	// JSON encoder turns the invalid byte into U+FFFD on the way in.)
	odd := drec("shop", "web-0", "x\x1b]0;owned\x07\u009b\xff", 3, 0)
	odd.Syscall, odd.Action = "mount\r", "denied\x1b[8m"
	writeRecs(t, s, innocent, evil, odd)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runD(t, "--dir", root, "-n", "shop")
	if code != 0 {
		t.Fatal(code, errOut)
	}
	if !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 in the table:\n%q", out)
	}
	for i, r := range out {
		if r < 0x20 && r != '\n' || r == 0x7f || r >= 0x80 && r <= 0x9f {
			t.Fatalf("control character %U in the table at byte %d:\n%q", r, i, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header and 3 rows:\n%s", len(lines), out)
	}
	if !strings.Contains(lines[2], `\x0d\x1b[2K\x1b[1A\x1b[2K`) || !strings.HasSuffix(lines[1], "curl") {
		t.Errorf("rows not shown escaped:\n%s", out)
	}
	for _, want := range []string{`x\x1b]0;owned\x07\u009b`, `mount\x0d`, `denied\x1b[8m`} {
		if !strings.Contains(lines[3], want) {
			t.Errorf("row lacks %q: %q", want, lines[3])
		}
	}
	// JSON lines are already safe (the encoder escapes controls) and stay
	// exactly as written.
	_, jout, _ := runD(t, "--dir", root, "-n", "shop", "-o", "json")
	want, _ := json.Marshal(evil)
	if !strings.Contains(jout, string(want)+"\n") {
		t.Errorf("JSON output changed the record:\n%s", jout)
	}
}

// An overflow aggregate names no process; the table says so.
func TestDenialsTableOverflow(t *testing.T) {
	root := filepath.Join(t.TempDir(), "log")
	s := denials.NewFileSink(root, 1<<20, 5)
	r := drec("shop", "web-0", "app", 1, 0)
	r.Overflow, r.Pid, r.Comm, r.Count = true, 0, "", 4711
	writeRecs(t, s, r)
	_ = s.Close()
	_, out, _ := runD(t, "--dir", root, "-n", "shop")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if f := strings.Fields(lines[len(lines)-1]); len(f) != 10 || f[7] != "4711" || f[8] != "*" || f[9] != "(overflow)" {
		t.Errorf("overflow row %q", lines[len(lines)-1])
	}
}
