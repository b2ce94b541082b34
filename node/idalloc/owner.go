package idalloc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/stockade-dev/stockade/profiles/userns"
)

// Owner identifies the process holding a lease (the pod's shim). A pid alone
// can be reused after the owner dies; the pair pid + start time (clock ticks
// since boot, /proc/<pid>/stat field 22) cannot within one boot, and the
// boot ID tells leases that survived a reboot in a persistent state_dir
// from live ones.
type Owner struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	BootID    string `json:"boot_id,omitempty"`
}

// String renders the owner for logs.
func (o Owner) String() string { return fmt.Sprintf("pid %d (start %d)", o.Pid, o.StartTime) }

// procRoot is where proc is mounted; tests never need another, but keeping it
// in one place documents every /proc read of this file.
const procRoot = "/proc"

// CurrentOwner describes the calling process.
func CurrentOwner() (Owner, error) {
	return ProcessOwner(os.Getpid())
}

// ProcessOwner describes process pid.
func ProcessOwner(pid int) (Owner, error) {
	st, state, err := processStart(pid)
	if err != nil {
		return Owner{}, err
	}
	if state == 'Z' || state == 'X' {
		return Owner{}, fmt.Errorf("process %d has exited: %w", pid, userns.ErrNotFound)
	}
	return Owner{Pid: pid, StartTime: st, BootID: bootID()}, nil
}

// Alive reports whether the owner process still runs: same pid, same start
// time, same boot, and not a zombie. Any doubt other than "the process is
// gone" counts as alive, because reclaiming a live pod's range would let two
// pods share host IDs.
func (o Owner) Alive() bool {
	if o.Pid <= 0 {
		return false
	}
	if b := bootID(); b != "" && o.BootID != "" && b != o.BootID {
		return false
	}
	st, state, err := processStart(o.Pid)
	if err != nil {
		return !errors.Is(err, userns.ErrNotFound)
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return st == o.StartTime
}

// OwnerAlive is the basic liveness test for Reclaim: the lease's owner runs.
func OwnerAlive(l Lease) bool { return l.Owner.Alive() }

// processStart reads the start time and state of pid from /proc/<pid>/stat.
func processStart(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("process %d: %w", pid, userns.ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return parseStat(data)
}

// parseStat extracts state (field 3) and starttime (field 22). The command
// name (field 2) is in parentheses and may itself contain spaces and ')',
// so fields are counted from the last ')'.
func parseStat(data []byte) (start uint64, state byte, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat %q: %w", data, userns.ErrInvalid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q: %w", data, userns.ErrInvalid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed stat start time %q: %w", fields[19], userns.ErrInvalid)
	}
	return start, fields[0][0], nil
}

// bootID is the kernel's random per-boot ID, "" where unavailable.
func bootID() string {
	b, err := os.ReadFile(procRoot + "/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
