package denials

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
)

// captureLog returns a context whose log.G writes text lines into buf.
func captureLog() (context.Context, *bytes.Buffer) {
	buf := &bytes.Buffer{}
	l := logrus.New()
	l.Out = buf
	l.Formatter = &logrus.TextFormatter{DisableTimestamp: true}
	return log.WithLogger(context.Background(), logrus.NewEntry(l)), buf
}

// TestLogSinkRateLimited is issue 21 item 3: every record used to become a
// shim-log warning, about 2.4 GB an hour for one looping container. Now a
// container gets perMinute warnings a minute and one line with the exact
// count of what was suppressed.
func TestLogSinkRateLimited(t *testing.T) {
	ctx, buf := captureLog()
	s := NewLogSink(ctx, 10)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return now }
	a := rec("c1", 1)
	b := rec("c2", 1)
	b.Container = "other"
	for i := 0; i < 1000; i++ {
		r := a
		if i%2 == 1 {
			r = rec("c1", 3) // an aggregate standing for 3 denials
		}
		_ = s.Write(r, nil)
		now = now.Add(10 * time.Millisecond)
	}
	_ = s.Write(b, nil) // another container has its own budget
	if n := strings.Count(buf.String(), "syscall denied"); n != 11 {
		t.Fatalf("%d warnings, want 10 for c1 and 1 for c2:\n%s", n, buf)
	}
	s.flush(now) // period not over: nothing yet
	if strings.Contains(buf.String(), "suppressed") {
		t.Fatal("summary before the period ended")
	}
	now = now.Add(logPeriod)
	s.flush(now)
	// 990 records suppressed: 495 of count 1 and 495 of count 3.
	re := regexp.MustCompile(`suppressed 990 denial warnings in the last 1m10s \(1980 denials`)
	if got := re.FindAllString(buf.String(), -1); len(got) != 1 {
		t.Errorf("want one summary line for c1 with exact counts:\n%s", buf)
	}
	if strings.Count(buf.String(), "msg=\"suppressed") != 1 {
		t.Errorf("c2 suppressed nothing and must not report:\n%s", buf)
	}
	if len(s.budgets) != 0 {
		t.Errorf("%d budgets kept after their period", len(s.budgets))
	}
	// A new period has a new budget; Release reports what is pending.
	buf.Reset()
	for i := 0; i < 15; i++ {
		_ = s.Write(a, nil)
	}
	s.Release(a.attribution())
	if n := strings.Count(buf.String(), "syscall denied"); n != 10 || !strings.Contains(buf.String(), "suppressed 5 denial warnings") {
		t.Errorf("after release:\n%s", buf)
	}
	// Zero logs nothing, and still counts.
	ctx0, buf0 := captureLog()
	s0 := NewLogSink(ctx0, 0)
	_ = s0.Write(a, nil)
	_ = s0.Close()
	if strings.Contains(buf0.String(), "syscall denied") || !strings.Contains(buf0.String(), "suppressed 1 denial warnings") {
		t.Errorf("log_per_minute 0:\n%s", buf0)
	}
}

// The shim log escapes what a workload controls and carries the cut exe.
func TestLogSinkEscapesAndBounds(t *testing.T) {
	ctx, buf := captureLog()
	s := NewLogSink(ctx, 10)
	r := rec("c1", 1)
	r.Comm = "\r\x1b[2K"
	r.Exe = "/" + strings.Repeat("x", 4000)
	r.truncateFields()
	_ = s.Write(r, nil)
	out := buf.String()
	if strings.ContainsAny(out, "\r\x1b") || len(out) > 2*maxFieldBytes {
		t.Errorf("shim log line (%d bytes) carries raw controls or the whole exe: %q", len(out), out[:min(len(out), 200)])
	}
}
