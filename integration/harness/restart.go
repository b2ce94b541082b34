package harness

import (
	"context"
	"fmt"
)

// RestartContainerd stops containerd (SIGTERM) and starts it again on the
// same root, state and config, the way an operator's upgrade or a crash
// loop does. Running shims must survive it: containerd reconnects to them.
// e.Client is replaced by a client of the new daemon, and it returns once
// CRI is ready.
func (e *Env) RestartContainerd(ctx context.Context) error {
	if e.daemon == nil {
		return fmt.Errorf("no daemon to restart")
	}
	d := e.daemon
	if e.Client != nil {
		_ = e.Client.Close()
	}
	if err := d.stop(); err != nil {
		return fmt.Errorf("stop containerd: %w", err)
	}
	d.stopping.Store(false)
	if err := d.start(); err != nil {
		return err
	}
	c, err := d.connect(ctx)
	if err != nil {
		return err
	}
	e.Client = c
	// As after Start: the gRPC socket answers before the CRI plugin has
	// initialised ("server is not initialized yet"), and callers go on to
	// make CRI calls.
	return e.waitCRI(ctx)
}
