//go:build !(cgo && seccomp)

package stormtest

import (
	"time"

	"github.com/stockade-dev/stockade/shim/denials"
)

// MeasureStorm needs seccomp user notification.
func MeasureStorm(n int) (rate float64, lost int, err error) {
	return 0, 0, denials.ErrNotSupported
}

// MeasureKernelDeny needs the seccomp test filters of this build.
func MeasureKernelDeny(n int) ([]time.Duration, error) { return nil, denials.ErrNotSupported }

// Storm needs seccomp user notification.
func Storm(n int, opt StormOptions) (StormResult, error) {
	return StormResult{}, denials.ErrNotSupported
}
