//go:build cgo && seccomp

package bench

import (
	"runtime"
	"time"

	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// loadSeccomp loads p the way runc's init does (specconv, then
// InitSeccomp: libseccomp compile, runc's ENOSYS patch, seccomp(2)) and
// returns how long that took. The filter stays on the calling thread, which
// is locked and never returned to the runtime's pool.
func loadSeccomp(p *specs.LinuxSeccomp) (time.Duration, error) {
	runtime.LockOSThread()
	t0 := time.Now()
	cfg, err := specconv.SetupSeccomp(p)
	if err != nil {
		return 0, err
	}
	fd, err := lcseccomp.InitSeccomp(cfg)
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if fd >= 0 {
		_ = unix.Close(fd)
	}
	return d, nil
}
