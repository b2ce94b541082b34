// Package userns gives every pod its own host UID/GID range: it resolves the
// node's ID pool (node config, /etc/subuid and /etc/subgid, or a built-in
// default), hands out 65536-ID ranges through leases that concurrent shim
// processes share on disk, and provides the small kernel helpers the userns
// hook needs (uid_map parsing, idmap support of a filesystem, sysctls written
// into a pod's network namespace from the host side).
//
// It imports only the runtime-spec, x/sys and the standard library.
package userns

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	// RangeSize is the number of IDs every pod gets: the full 16-bit ID space
	// a container image may use (0..65535, including nobody/65534 and the
	// pause image's 65535), as Kubernetes does for hostUsers: false.
	RangeSize = 65536

	// MinHostID is the first ID a pool may contain. IDs below it are the
	// host's own users and groups (root, daemons, people); mapping them into
	// a container would make container users host users.
	MinHostID = 65536

	// MaxIDEnd is the exclusive end of valid IDs: (uint32)-1 means "no ID"
	// to the kernel (e.g. chown's "leave unchanged"), so 4294967294 is the
	// last ID that may be mapped.
	MaxIDEnd = 1<<32 - 1

	// DefaultPoolStart and DefaultPoolRanges define the pool used when the
	// node config names none and /etc/subuid has no "stockade" entry:
	// 2^31 .. 2^31+1024*65536-1, room for 1024 pods.
	//
	// Why there: the kubelet's own pool (for hostUsers: false pods) defaults
	// to 65536..2^32 but it allocates lowest-first and never needs more than
	// maxPods ranges (110 by default, i.e. IDs below ~7.3 million), so its
	// ranges stay far below 2^31 unless a node runs more than 32767 pods.
	// Distributions hand out /etc/subuid ranges from 100000 upwards in
	// 65536-ID steps, so rootless users stay far below 2^31 too. Operators
	// who want a hard guarantee give the kubelet and stockade disjoint
	// /etc/subuid entries ("kubelet:..." and "stockade:...").
	DefaultPoolStart  = 1 << 31
	DefaultPoolRanges = 1024
)

// Range is one pod's contiguous host ID range; container ID 0 maps to Start.
// The same range is used for UIDs and GIDs.
type Range struct {
	Start uint32 `json:"start"`
	Size  uint32 `json:"size"`
}

// End is the exclusive end of the range, as a uint64 so that a range ending
// at 2^32-1 does not wrap.
func (r Range) End() uint64 { return uint64(r.Start) + uint64(r.Size) }

// Overlaps reports whether two ranges share an ID.
func (r Range) Overlaps(o Range) bool {
	return uint64(r.Start) < o.End() && uint64(o.Start) < r.End()
}

// Mappings is the OCI ID mapping of the range: container 0..Size-1 onto
// host Start..Start+Size-1. Used for both uidMappings and gidMappings.
func (r Range) Mappings() []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.Start, Size: r.Size}}
}

// String renders the range as inclusive "first-last".
func (r Range) String() string {
	return fmt.Sprintf("%d-%d", r.Start, r.End()-1)
}

// Pool is the host ID space ranges are allocated from.
type Pool struct {
	Start uint32
	Size  uint32
	// Source says where the pool came from, for errors and logs
	// (`userns.pool`, "/etc/subuid entry for stockade", "built-in default").
	Source string
}

// DefaultPool is the pool used when nothing else is configured.
func DefaultPool() Pool {
	return Pool{Start: DefaultPoolStart, Size: DefaultPoolRanges * RangeSize, Source: "built-in default"}
}

// End is the exclusive end of the pool.
func (p Pool) End() uint64 { return uint64(p.Start) + uint64(p.Size) }

// MaxRangeSize bounds a configured range size: 2^24 IDs (256 default
// ranges) is far beyond what any image uses and keeps the default pool
// useful for 64 pods.
const MaxRangeSize = 1 << 24

// ValidRangeSize checks a per-pod range size: a multiple of RangeSize (so
// every pod still maps the full 16-bit ID space images use, and ranges stay
// on the pool's grid) no larger than MaxRangeSize.
func ValidRangeSize(size uint32) error {
	if size == 0 || size%RangeSize != 0 || size > MaxRangeSize {
		return fmt.Errorf("range size %d: must be a multiple of %d between %d and %d: %w", size, RangeSize, RangeSize, MaxRangeSize, ErrInvalid)
	}
	return nil
}

// Ranges is how many pod ranges fit; a tail smaller than RangeSize is unused.
func (p Pool) Ranges() int { return int(p.Size / RangeSize) }

// String renders the pool as inclusive "first-last (source)".
func (p Pool) String() string {
	return fmt.Sprintf("%d-%d (%s)", p.Start, p.End()-1, p.Source)
}

// Validate checks that the pool holds at least one range, stays clear of
// host IDs and ends before the invalid ID (uint32)-1.
func (p Pool) Validate() error {
	switch {
	case p.Start < MinHostID:
		return fmt.Errorf("pool %s: starts at %d, inside the host's own IDs (below %d): %w", p, p.Start, MinHostID, ErrInvalid)
	case p.Size < RangeSize:
		return fmt.Errorf("pool %s: %d IDs is smaller than one pod range of %d: %w", p, p.Size, RangeSize, ErrInvalid)
	case p.End() > MaxIDEnd:
		return fmt.Errorf("pool %s: extends past the last valid ID %d: %w", p, MaxIDEnd-1, ErrInvalid)
	}
	return nil
}

// ParsePool parses the node config's pool: "START-END" (both inclusive, e.g.
// "2147483648-2214592511") or "START+SIZE" (e.g. "2147483648+67108864").
// The result is validated.
func ParsePool(s string) (Pool, error) {
	s = strings.TrimSpace(s)
	var (
		start, size uint64
		err         error
	)
	if a, b, ok := strings.Cut(s, "+"); ok {
		if start, err = parseID(a); err == nil {
			size, err = parseID(b)
		}
	} else if a, b, ok := strings.Cut(s, "-"); ok {
		var last uint64
		if start, err = parseID(a); err == nil {
			if last, err = parseID(b); err == nil {
				if last < start {
					return Pool{}, fmt.Errorf("pool %q: end %d before start %d: %w", s, last, start, ErrInvalid)
				}
				size = last - start + 1
			}
		}
	} else {
		return Pool{}, fmt.Errorf("pool %q: want START-END or START+SIZE: %w", s, ErrInvalid)
	}
	if err != nil {
		return Pool{}, fmt.Errorf("pool %q: %w", s, err)
	}
	if start+size > MaxIDEnd {
		return Pool{}, fmt.Errorf("pool %q: extends past the last valid ID %d: %w", s, MaxIDEnd-1, ErrInvalid)
	}
	p := Pool{Start: uint32(start), Size: uint32(size), Source: "userns.pool"}
	return p, p.Validate()
}

// parseID parses a decimal ID or size no larger than 2^32-1.
func parseID(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number between 0 and %d: %w", s, uint64(MaxIDEnd), ErrInvalid)
	}
	return v, nil
}

// The sentinels below carry containerd error kinds without importing
// github.com/containerd/errdefs (profiles/* stay free of containerd):
// errdefs.Resolve, errdefs.IsXxx and errgrpc.ToGRPC recognise an error by the
// marker method of its kind (InvalidParameter, NotFound, ResourceExhausted,
// FailedPrecondition), so a wrapped sentinel maps to the right gRPC code at
// the shim's edge while callers here use errors.Is on the sentinel itself.

// ErrInvalid marks malformed input: a pool string, a subordinate-ID file, a
// lease key. Kind: errdefs.ErrInvalidArgument.
var ErrInvalid error = invalidError{}

// ErrNotFound marks a key without a lease. Kind: errdefs.ErrNotFound.
var ErrNotFound error = notFoundError{}

// ErrPoolExhausted marks a pool with no free 65536-ID range left.
// Kind: errdefs.ErrResourceExhausted.
var ErrPoolExhausted error = exhaustedError{}

// ErrLeaseHeld marks a claim on a lease whose owner still runs: the key is
// in use by a live pod, and its range is never handed to a second one.
// Kind: errdefs.ErrAlreadyExists.
var ErrLeaseHeld error = heldError{}

// ErrCorruptState marks lease state this package cannot read; allocation
// refuses to guess around it, because a lease it cannot read may cover a
// range still in use. Kind: errdefs.ErrFailedPrecondition.
var ErrCorruptState error = corruptError{}

type invalidError struct{}

func (invalidError) Error() string     { return "invalid argument" }
func (invalidError) InvalidParameter() {}

type notFoundError struct{}

func (notFoundError) Error() string { return "not found" }
func (notFoundError) NotFound()     {}

type exhaustedError struct{}

func (exhaustedError) Error() string      { return "resource exhausted" }
func (exhaustedError) ResourceExhausted() {}

type heldError struct{}

func (heldError) Error() string  { return "lease held by a live owner" }
func (heldError) AlreadyExists() {}

type corruptError struct{}

func (corruptError) Error() string       { return "corrupt user-namespace lease state" }
func (corruptError) FailedPrecondition() {}
