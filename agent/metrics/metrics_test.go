package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stockade-dev/stockade/agent/sink"
)

func TestEndpointShowsDenialsGapsAndErrors(t *testing.T) {
	m := New("node-a")
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	m.Record(&sink.Record{Time: at, Namespace: "shop", Pod: "web-1", Container: "app", Syscall: "unshare", Action: sink.ActionDenied, Count: 3})
	m.Record(&sink.Record{Time: at, Namespace: "shop", Pod: "web-1", Container: "app", Syscall: "unshare", Action: sink.ActionDenied})
	m.Record(&sink.Record{Type: sink.TypeGap, Namespace: "shop", Pod: "web-1", Container: "app", Dropped: 7})
	m.BadLine("malformed")
	m.Error("api")
	m.SetProfiles(map[string]int{"shop": 2})
	m.SetProfiles(map[string]int{"shop": 1})
	m.ProfileOp("merge")
	m.Event("created")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := string(body)
	for _, want := range []string{
		`stockade_denials_total{action="denied",container="app",namespace="shop",node="node-a",pod="web-1",syscall="unshare"} 4`,
		`stockade_denials_dropped_total{container="app",namespace="shop",node="node-a",pod="web-1"} 7`,
		`stockade_sink_bad_lines_total{node="node-a",reason="malformed"} 1`,
		`stockade_agent_errors_total{node="node-a",reason="api"} 1`,
		`stockade_recorded_profiles{namespace="shop",node="node-a"} 1`,
		`stockade_profile_operations_total{node="node-a",operation="merge"} 1`,
		`stockade_events_total{node="node-a",result="created"} 1`,
		`stockade_sink_last_record_timestamp_seconds{node="node-a"} 1.7962992e+09`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestPodGoneDropsItsSeries(t *testing.T) {
	m := New("n")
	m.Record(&sink.Record{Namespace: "shop", Pod: "web-1", Container: "app", Syscall: "bpf", Action: sink.ActionDenied})
	m.Record(&sink.Record{Namespace: "shop", Pod: "web-2", Container: "app", Syscall: "bpf", Action: sink.ActionDenied})
	m.Record(&sink.Record{Type: sink.TypeGap, Namespace: "shop", Pod: "web-1", Container: "app", Dropped: 1})
	m.PodGone("shop", "web-1")
	if n := testutil.CollectAndCount(m.denials); n != 1 {
		t.Errorf("denial series after the pod went: %d, want 1", n)
	}
	if n := testutil.CollectAndCount(m.dropped); n != 0 {
		t.Errorf("gap series after the pod went: %d, want 0", n)
	}
}
