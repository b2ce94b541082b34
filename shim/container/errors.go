package container

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
)

// ErrProcessExited is returned when signalling or resizing a process that has exited.
var ErrProcessExited = fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)

// translate maps libcontainer's sentinel errors to containerd errdefs kinds,
// keeping the original message.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, libcontainer.ErrNotRunning), errors.Is(err, libcontainer.ErrNotPaused),
		errors.Is(err, libcontainer.ErrPaused), errors.Is(err, libcontainer.ErrRunning):
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	case errors.Is(err, libcontainer.ErrExist):
		return fmt.Errorf("%w: %w", err, errdefs.ErrAlreadyExists)
	case errors.Is(err, libcontainer.ErrNotExist):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return err
}
