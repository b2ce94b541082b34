//go:build !(cgo && seccomp)

package bench

import (
	"errors"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var errNoSeccomp = errors.New("built without libseccomp (needs cgo and -tags seccomp)")

func loadSeccomp(*specs.LinuxSeccomp) (time.Duration, error) { return 0, errNoSeccomp }
