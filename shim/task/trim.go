package task

import (
	"runtime/debug"
	"sync"
	"time"
)

// trimDelay is how long the shim must go without a lifecycle request
// before it hands its free heap back to the kernel.
const trimDelay = time.Second

// trimmer returns a shim's free heap pages to the kernel once its lifecycle
// requests stop.
//
// Why: a shim is one process per pod and mostly idle, so what it keeps
// resident is paid by every pod on the node for the pod's whole life.
// Starting a container allocates in a burst (the spec, the profiles,
// libcontainer's config and its JSON for the init), and Go keeps the freed
// heap mapped up to its GC goal, at least 4 MiB, with the background
// scavenger returning only what lies past that. One forced collection and
// scavenge after a burst costs about a millisecond of CPU on a timer
// goroutine, off every request path, and leaves the idle shim holding
// little more than its live heap (bench: "shim memory").
type trimmer struct {
	delay time.Duration
	free  func() // debug.FreeOSMemory; the tests count calls

	mu    sync.Mutex
	timer *time.Timer
}

func newTrimmer(delay time.Duration, free func()) *trimmer {
	if free == nil {
		free = debug.FreeOSMemory
	}
	return &trimmer{delay: delay, free: free}
}

// kick (re)arms the trim so that it runs once, delay after the last kick.
func (t *trimmer) kick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(t.delay, t.free)
		return
	}
	t.timer.Reset(t.delay)
}
