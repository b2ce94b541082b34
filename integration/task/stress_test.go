package task

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/stockade-dev/stockade/integration/harness"
)

// stressCount is how many containers and how many execs the stress test runs
// (each); STOCKADE_STRESS_COUNT overrides it for longer soak runs.
func stressCount() int {
	if n, err := strconv.Atoi(os.Getenv("STOCKADE_STRESS_COUNT")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// TestStressExitCodes runs many short-lived containers and execs, each with
// its own exit code, and checks that not one code is lost or wrong: the shim
// has exactly one reaper.
func TestStressExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test skipped with -short")
	}
	env := harness.Get(t)
	n := stressCount()
	deadline := time.Now().Add(15 * time.Minute)
	const workers = 8

	var wrong, done atomic.Int64
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				want := uint32(i % 256)
				c := newContainer(t, env, fmt.Sprintf("%s-c%d", newID(t), i), []string{"sh", "-c", "exit " + strconv.Itoa(int(want))})
				got, _ := run(t, env, c)
				cleanupContainer(env, c)
				if got != want {
					wrong.Add(1)
					t.Errorf("container %d: exit code %d, want %d", i, got, want)
				}
				done.Add(1)
			}
		}()
	}
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	// Execs in one long-running container, several in flight at once.
	ctx := env.Context()
	_, task := startLong(t, env)
	spec, err := task.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var execs atomic.Int64
	execJobs := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range execJobs {
				want := uint32((i * 7) % 256)
				ps := *spec.Process
				ps.Args = []string{"sh", "-c", "exit " + strconv.Itoa(int(want))}
				p, err := task.Exec(ctx, fmt.Sprintf("x%d", i), &ps, cio.NullIO)
				if err != nil {
					t.Errorf("exec %d: %v", i, err)
					continue
				}
				sc, _ := p.Wait(ctx)
				if err := p.Start(ctx); err != nil {
					t.Errorf("exec %d start: %v", i, err)
					continue
				}
				st := <-sc
				if _, err := p.Delete(ctx); err != nil {
					t.Errorf("exec %d delete: %v", i, err)
				}
				if st.ExitCode() != want {
					wrong.Add(1)
					t.Errorf("exec %d: exit code %d, want %d", i, st.ExitCode(), want)
				}
				execs.Add(1)
			}
		}()
	}
	for i := 0; i < n && time.Now().Before(deadline); i++ {
		execJobs <- i
	}
	close(execJobs)
	wg.Wait()

	t.Logf("%d containers and %d execs, %d wrong exit codes", done.Load(), execs.Load(), wrong.Load())
	if done.Load() < int64(n) || execs.Load() < int64(n) {
		t.Errorf("only %d containers and %d execs ran before the deadline, want %d each", done.Load(), execs.Load(), n)
	}
}
