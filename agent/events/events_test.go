package events

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/stockade-dev/stockade/agent/sink"
)

type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) Event(r string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[r]++
}

func (c *counts) get(r string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.m[r] }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func denied(syscall string, at time.Time, count uint64) *sink.Record {
	return &sink.Record{Time: at, Namespace: "shop", Pod: "web-1", PodUID: "5f0c-uid", Container: "app",
		ContainerID: "abc123", Syscall: syscall, Action: sink.ActionDenied, Errno: "EPERM", Count: count}
}

func events(t *testing.T, c *fake.Clientset) []corev1.Event {
	t.Helper()
	l, err := c.CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestFirstDenialCreatesAnEventAndRepeatsUpdateItsCount(t *testing.T) {
	c := fake.NewClientset()
	clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	obs := &counts{}
	r := &Recorder{Client: c, Node: "node-a", Observer: obs, Now: clk.now, MinUpdate: 10 * time.Second}

	r.Observe(denied("unshare", clk.t, 1))
	r.Flush(context.Background())
	evs := events(t, c)
	if len(evs) != 1 {
		t.Fatalf("events: %+v", evs)
	}
	e := evs[0]
	if e.Message != "stockade denied unshare (EPERM) 1 time" || e.Reason != ReasonDenied || e.Type != corev1.EventTypeWarning ||
		e.InvolvedObject.Kind != "Pod" || e.InvolvedObject.Name != "web-1" || string(e.InvolvedObject.UID) != "5f0c-uid" ||
		e.InvolvedObject.FieldPath != "spec.containers{app}" || e.Source.Component != Component || e.Source.Host != "node-a" || e.Count != 1 {
		t.Errorf("event: %+v", e)
	}

	// Two more within MinUpdate: held back; after it: one update.
	clk.t = clk.t.Add(time.Second)
	r.Observe(denied("unshare", clk.t, 2))
	r.Flush(context.Background())
	if obs.get("updated") != 0 {
		t.Fatal("updated before MinUpdate")
	}
	clk.t = clk.t.Add(10 * time.Second)
	r.Flush(context.Background())
	evs = events(t, c)
	if len(evs) != 1 || evs[0].Message != "stockade denied unshare (EPERM) 3 times" || evs[0].Count != 3 {
		t.Fatalf("after update: %+v", evs)
	}
	// Another syscall is another Event; a sandbox, a gap and a
	// non-Kubernetes container are none.
	r.Observe(denied("mount", clk.t, 1))
	pod := denied("bpf", clk.t, 1)
	pod.Container = "POD"
	r.Observe(pod)
	r.Observe(&sink.Record{Type: sink.TypeGap, Time: clk.t, Namespace: "shop", Pod: "web-1", PodUID: "5f0c-uid", Dropped: 4})
	plain := denied("bpf", clk.t, 1)
	plain.PodUID = plain.ContainerID
	r.Observe(plain)
	r.Flush(context.Background())
	if evs := events(t, c); len(evs) != 2 {
		t.Fatalf("events: %+v", evs)
	}
	// After the window a denial starts a new Event.
	clk.t = clk.t.Add(11 * time.Minute)
	r.Flush(context.Background())
	r.Observe(denied("unshare", clk.t, 1))
	r.Flush(context.Background())
	if evs := events(t, c); len(evs) != 3 {
		t.Fatalf("after the window: %d events", len(evs))
	}
	if obs.get("created") != 3 || obs.get("updated") != 1 {
		t.Errorf("counts: %v", obs.m)
	}
}

func TestRateLimitAndAPIErrorsDelayButKeepTheCount(t *testing.T) {
	c := fake.NewClientset()
	clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	obs := &counts{}
	lim := flowcontrol.NewFakeNeverRateLimiter()
	r := &Recorder{Client: c, Node: "node-a", Observer: obs, Now: clk.now, Limiter: lim}
	r.Observe(denied("unshare", clk.t, 1))
	r.Flush(context.Background())
	if len(events(t, c)) != 0 || obs.get("dropped") != 1 {
		t.Fatalf("rate limit: events sent anyway (dropped %d)", obs.get("dropped"))
	}
	r.Limiter = flowcontrol.NewFakeAlwaysRateLimiter()
	down := true
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if down {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	r.Observe(denied("unshare", clk.t, 4))
	r.Flush(context.Background())
	if len(events(t, c)) != 0 || obs.get("dropped") != 2 {
		t.Fatalf("API down: dropped %d", obs.get("dropped"))
	}
	down = false
	r.Flush(context.Background())
	evs := events(t, c)
	if len(evs) != 1 || evs[0].Count != 5 || evs[0].Message != "stockade denied unshare (EPERM) 5 times" {
		t.Fatalf("after recovery: %+v", evs)
	}
}

func TestOldRecordsAndBoundedAggregates(t *testing.T) {
	c := fake.NewClientset()
	clk := &clock{time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	obs := &counts{}
	r := &Recorder{Client: c, Node: "n", Observer: obs, Now: clk.now, MaxOpen: 2}
	r.Observe(denied("unshare", clk.t.Add(-time.Hour), 1)) // history
	r.Observe(denied("a", clk.t, 1))
	r.Observe(denied("b", clk.t, 1))
	r.Observe(denied("c", clk.t, 1)) // over MaxOpen
	r.Flush(context.Background())
	if n := len(events(t, c)); n != 2 || obs.get("dropped") != 1 {
		t.Fatalf("events %d dropped %d", n, obs.get("dropped"))
	}
}

func TestMessage(t *testing.T) {
	for _, tc := range []struct {
		sys, action, errno string
		n                  uint64
		want               string
	}{
		{"unshare", sink.ActionDenied, "EPERM", 3, "stockade denied unshare (EPERM) 3 times"},
		{"keyctl", sink.ActionDenied, "", 1, "stockade denied keyctl (EPERM) 1 time"},
		{"ptrace", sink.ActionAllowed, "", 2, "stockade would deny ptrace (complain mode: allowed) 2 times"},
	} {
		if got := Message(tc.sys, tc.action, tc.errno, tc.n); got != tc.want {
			t.Errorf("Message(%s) = %q, want %q", tc.sys, got, tc.want)
		}
	}
}
