// Package events turns denials into Kubernetes Events on the pod, so that
// `kubectl describe pod` and `kubectl events` show them where operators
// already look: one Event per (pod, container, syscall, action) and window,
// created at the first denial and updated with the count as more come
// ("stockade denied unshare (EPERM) 3 times"), with every API call under a
// node-wide rate limit.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/log"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/stockade-dev/stockade/agent/sink"
)

// Reasons of the Events.
const (
	ReasonDenied      = "SyscallDenied"
	ReasonWouldDeny   = "SyscallWouldBeDenied" // complain mode
	Component         = "stockade-agent"
	reportingPrefix   = "stockade.dev/agent"
	defaultWindow     = 10 * time.Minute
	defaultMinUpdate  = 10 * time.Second
	defaultMaxOpen    = 10000
	defaultQPS        = 5
	defaultBurst      = 25
	sandboxContainer  = "POD"
	maxMessageSyscall = 64
)

// Observer counts outcomes: created, updated, dropped.
type Observer interface{ Event(result string) }

// Recorder aggregates denials into Events. Observe and Flush may be called
// from different goroutines.
type Recorder struct {
	Client   kubernetes.Interface
	Node     string
	Observer Observer
	// Window is how long one Event aggregates a (pod, container, syscall,
	// action); the first denial after it starts a new Event.
	Window time.Duration
	// MinUpdate is the least time between two updates of one Event.
	MinUpdate time.Duration
	// MaxOpen bounds the aggregates held; past it new keys are dropped
	// (counted) until old windows close.
	MaxOpen int
	// Limiter bounds the node's Event API calls (create and patch).
	Limiter flowcontrol.RateLimiter
	Now     func() time.Time

	mu   sync.Mutex
	open map[key]*agg
	seq  atomic.Uint64
}

// eventName is pod.<hex>, unique per agent: the time of the flush plus a
// sequence number, since one flush may create several Events of a pod.
func eventName(pod string, now time.Time, seq uint64) string {
	if len(pod) > 230 {
		pod = pod[:230]
	}
	return fmt.Sprintf("%s.%x", pod, uint64(now.UnixNano())+seq)
}

type key struct {
	namespace, pod, podUID, container, syscall, action string
}

type agg struct {
	errno       string
	count       uint64
	first, last time.Time
	// name is the Event's name once created; sent the count it shows.
	name     string
	sent     uint64
	lastSent time.Time
}

func (r *Recorder) init() {
	if r.open != nil {
		return
	}
	r.open = map[key]*agg{}
	if r.Window <= 0 {
		r.Window = defaultWindow
	}
	if r.MinUpdate <= 0 {
		r.MinUpdate = defaultMinUpdate
	}
	if r.MaxOpen <= 0 {
		r.MaxOpen = defaultMaxOpen
	}
	if r.Limiter == nil {
		r.Limiter = flowcontrol.NewTokenBucketRateLimiter(defaultQPS, defaultBurst)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// Observe takes one sink record. Only denials of Kubernetes pods count:
// containers from plain containerd clients (their pod UID is their
// container ID) have no pod to put an Event on, and records older than
// the window (a sink read from its start) would only be noise.
func (r *Recorder) Observe(rec *sink.Record) {
	if rec.Type != "" || rec.Syscall == "" || rec.PodUID == "" || rec.PodUID == rec.ContainerID ||
		rec.Container == sandboxContainer {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	now := r.Now()
	if !rec.Time.IsZero() && now.Sub(rec.Time) > r.Window {
		return
	}
	k := key{rec.Namespace, rec.Pod, rec.PodUID, rec.Container, rec.Syscall, rec.Action}
	a := r.open[k]
	if a != nil && now.Sub(a.first) > r.Window {
		delete(r.open, k)
		a = nil
	}
	if a == nil {
		if len(r.open) >= r.MaxOpen {
			r.Observer.Event("dropped")
			return
		}
		a = &agg{first: now, errno: rec.Errno}
		r.open[k] = a
	}
	n := rec.Count
	if n == 0 {
		n = 1
	}
	a.count += n
	a.last = now
}

// Flush sends what changed: a create for every new aggregate, an update
// for every Event whose count grew and that was not updated in the last
// MinUpdate; it forgets closed windows. API errors are logged and counted
// and the aggregate stays pending, so an API server that is back gets the
// Event with the full count.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	r.init()
	now := r.Now()
	type job struct {
		k key
		a agg
	}
	var jobs []job
	for k, a := range r.open {
		closed := now.Sub(a.first) > r.Window
		due := a.count > a.sent && (a.name == "" || now.Sub(a.lastSent) >= r.MinUpdate || closed)
		if due {
			jobs = append(jobs, job{k, *a})
		}
		if closed && !due {
			delete(r.open, k)
		}
	}
	r.mu.Unlock()

	for _, j := range jobs {
		if !r.Limiter.TryAccept() {
			r.Observer.Event("dropped") // tried again at the next flush
			continue
		}
		name, err := r.send(ctx, j.k, &j.a, now)
		r.mu.Lock()
		if a := r.open[j.k]; a != nil && a.first.Equal(j.a.first) {
			if err == nil {
				a.name, a.sent, a.lastSent = name, j.a.count, now
				if now.Sub(a.first) > r.Window && a.count == a.sent {
					delete(r.open, j.k)
				}
			}
		}
		r.mu.Unlock()
		if err != nil {
			r.Observer.Event("dropped")
			log.G(ctx).WithError(err).WithField("pod", j.k.namespace+"/"+j.k.pod).Warn("denial event not sent")
		}
	}
}

// Message is the Event's message for count denials of syscall.
func Message(syscall, action, errno string, count uint64) string {
	if len(syscall) > maxMessageSyscall {
		syscall = syscall[:maxMessageSyscall]
	}
	times := "times"
	if count == 1 {
		times = "time"
	}
	if action == sink.ActionAllowed {
		return fmt.Sprintf("stockade would deny %s (complain mode: allowed) %d %s", syscall, count, times)
	}
	if errno == "" {
		errno = "EPERM"
	}
	return fmt.Sprintf("stockade denied %s (%s) %d %s", syscall, errno, count, times)
}

func (r *Recorder) send(ctx context.Context, k key, a *agg, now time.Time) (string, error) {
	evs := r.Client.CoreV1().Events(k.namespace)
	msg := Message(k.syscall, k.action, a.errno, a.count)
	if a.name != "" {
		patch, err := json.Marshal(map[string]any{
			"count":         a.count,
			"message":       msg,
			"lastTimestamp": metav1.NewTime(a.last),
		})
		if err != nil {
			return "", err
		}
		if _, err := evs.Patch(ctx, a.name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return "", fmt.Errorf("update event %s/%s: %w", k.namespace, a.name, err)
		}
		r.Observer.Event("updated")
		return a.name, nil
	}
	reason := ReasonDenied
	if k.action == sink.ActionAllowed {
		reason = ReasonWouldDeny
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			// Named like the kubelet's Events: the object's name and a
			// unique hex suffix.
			Name:      eventName(k.pod, now, r.seq.Add(1)),
			Namespace: k.namespace,
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Pod", Namespace: k.namespace, Name: k.pod, UID: types.UID(k.podUID),
			FieldPath: "spec.containers{" + k.container + "}",
		},
		Reason:              reason,
		Message:             msg,
		Type:                corev1.EventTypeWarning,
		Count:               int32(min(a.count, 1<<31-1)),
		FirstTimestamp:      metav1.NewTime(a.first),
		LastTimestamp:       metav1.NewTime(a.last),
		Source:              corev1.EventSource{Component: Component, Host: r.Node},
		ReportingController: reportingPrefix,
		ReportingInstance:   r.Node,
		Action:              "Deny",
	}
	created, err := evs.Create(ctx, ev, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create event for pod %s/%s: %w", k.namespace, k.pod, err)
	}
	r.Observer.Event("created")
	return created.Name, nil
}
