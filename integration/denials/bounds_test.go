package denials

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDenialStormBoundedShimLog is issue 21 item 3: a workload looping over
// a denied syscall from an executable with a ~4 KB path wrote 13.4 MB to
// containerd's log in 20 s, one warning per record, each carrying the whole
// path. Now the shim log gets at most log_per_minute warnings per container
// and minute, a summary line counts exactly what was suppressed, and the
// records (sink and log) carry the path cut to 1 KiB with a marker.
func TestDenialStormBoundedShimLog(t *testing.T) {
	env := stockadeEnv(t)
	const perMinute = 5
	setNodeConfig(t, env, fmt.Sprintf("aggregate_window = \"0\"\nlog_per_minute = %d", perMinute), "")
	// 19 components of 200 bytes: a 3.8 KB directory, under PATH_MAX.
	comp := strings.Repeat("d", 200)
	deep := "/tmp/" + strings.Repeat(comp+"/", 19)
	deep = strings.TrimSuffix(deep, "/")
	const n = 3000
	start := time.Now()
	id, code, out := run(t, env, fmt.Sprintf("mkdir -p %s && cp /bin/probe %s/probe && %s/probe -n %d keyctl", deep, deep, deep, n))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("errors=%d errno=EPERM", n)) {
		t.Fatalf("workload: exit %d: %s", code, out)
	}
	elapsed := time.Since(start)

	// The sink has every denial, with the exe cut and flagged.
	var delivered, gapped uint64
	for _, r := range records(t, logPath(env, "", id), n) {
		if r.Type != "" {
			gapped += r.Dropped
			continue
		}
		delivered += r.Count
		if len(r.Exe) > 1024 || !strings.Contains(r.Exe, "...[truncated ") || len(r.Truncated) != 1 || r.Truncated[0] != "exe" {
			t.Fatalf("record exe %d bytes, truncated %v: %.80q", len(r.Exe), r.Truncated, r.Exe)
		}
	}
	if delivered+gapped != n {
		t.Errorf("sink: %d delivered + %d gapped, want %d", delivered, gapped, n)
	}

	// The shim log: bounded warnings, and every denial counted in a
	// warning, a lost-records line or a suppressed summary. The summary
	// comes when the container is unregistered (its task was deleted).
	var warned, lines int
	var logged uint64
	var maxLine int
	idField := "container_id=" + id
	countRe := regexp.MustCompile(`\b(count|dropped|denials)=(\d+)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		warned, lines, logged, maxLine = 0, 0, 0, 0
		f, err := os.Open(env.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if !strings.Contains(l, idField+" ") && !strings.HasSuffix(l, idField) {
				continue
			}
			var field string
			switch {
			case strings.Contains(l, `msg="syscall denied"`):
				warned++
				field = "count"
			case strings.Contains(l, `msg="denial records lost"`):
				field = "dropped"
			case strings.Contains(l, `msg="suppressed `):
				field = "denials"
			default:
				continue
			}
			lines++
			maxLine = max(maxLine, len(l))
			for _, m := range countRe.FindAllStringSubmatch(l, -1) {
				if m[1] == field {
					v, _ := strconv.ParseUint(m[2], 10, 64)
					logged += v
				}
			}
		}
		f.Close()
		if logged >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("%d denials in %s: %d shim-log lines (%d warnings), longest %d bytes, accounting for %d denials",
		n, elapsed.Round(time.Millisecond), lines, warned, maxLine, logged)
	if limit := perMinute * (1 + int(elapsed/time.Minute)); warned > limit {
		t.Errorf("%d warnings in %s, want at most %d", warned, elapsed, limit)
	}
	if logged != n {
		t.Errorf("shim log accounts for %d denials, want exactly %d", logged, n)
	}
	if maxLine > 2048 {
		t.Errorf("a shim-log line of %d bytes: the exe path was not cut", maxLine)
	}
}
