package task

import (
	"sync/atomic"
	"testing"
	"time"
)

// A burst of kicks trims once, after the burst; a later kick trims again.
func TestTrimmerRunsOnceAfterBurst(t *testing.T) {
	var n atomic.Int32
	done := make(chan struct{}, 4)
	const delay = 500 * time.Millisecond
	tr := newTrimmer(delay, func() { n.Add(1); done <- struct{}{} })
	for range 5 {
		tr.kick()
	}
	<-done
	// Past more delays no second trim may come from the same burst.
	time.Sleep(3 * delay)
	if got := n.Load(); got != 1 {
		t.Fatalf("trims after one burst = %d, want 1", got)
	}
	tr.kick()
	<-done
	if got := n.Load(); got != 2 {
		t.Fatalf("trims after a second burst = %d, want 2", got)
	}
}
