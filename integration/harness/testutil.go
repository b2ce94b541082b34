package harness

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
)

// Buffer is an io.Writer that a task's stdio copy goroutines may write while
// a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var idSeq atomic.Int64

// NewID returns a container ID unique to this test process: containers of
// concurrent tests and of earlier runs never collide.
func NewID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), idSeq.Add(1))
}

// RequireStockade skips t unless stockade is the runtime under test: for
// promises stockade makes beyond containerd's contract, which runc's shim
// does not make.
func (e *Env) RequireStockade(t testing.TB) {
	t.Helper()
	if e.Handler != HandlerStockade {
		t.Skipf("tests stockade's own promises; runtime under test is %s", e.Runtime)
	}
}
