package seccomp

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cache memoizes Generate by a hash of everything the result depends on:
// the capabilities the container can hold, the policy's mode, arch and
// compat ABIs, and the pod and recorded profiles. A shim serves one pod,
// whose containers mostly repeat those inputs, and a pod that asks for
// RuntimeDefault costs two Generate calls and an intersection with a
// 400-name profile (about 4 ms against 0.8 ms for the baseline alone) at
// every container otherwise. Hits return a deep copy, since later pipeline
// steps rewrite the profile in place. Errors are not cached. Safe for
// concurrent use; the zero value is not: use NewCache.
type Cache struct {
	mu    sync.Mutex
	max   int
	m     map[[sha256.Size]byte]*specs.LinuxSeccomp
	order [][sha256.Size]byte // oldest first, for eviction

	// dir and generator are the node-wide layer (diskcache.go); dir is
	// "" without one.
	dir       string
	generator []byte
}

// NewCache returns a cache holding at most max profiles.
func NewCache(max int) *Cache {
	return &Cache{max: max, m: map[[sha256.Size]byte]*specs.LinuxSeccomp{}}
}

// cacheKey is what Generate reads; it must change whenever Generate's
// inputs do (TestCacheKeyCoversInputs).
type cacheKey struct {
	Caps       []string            `json:"caps"`
	Mode       Mode                `json:"mode"`
	Arch       string              `json:"arch"`
	CompatABIs []string            `json:"compat_abis"`
	Pod        *specs.LinuxSeccomp `json:"pod"`
	Recorded   *specs.LinuxSeccomp `json:"recorded"`
	NilSpec    bool                `json:"nil_spec"`
}

func keyOf(spec *specs.Spec, p Policy) ([sha256.Size]byte, error) {
	k := cacheKey{Mode: p.Mode, Arch: p.Arch, CompatABIs: p.CompatABIs, Pod: p.Pod, Recorded: p.Recorded, NilSpec: spec == nil}
	if spec != nil {
		for c := range capsOf(spec) {
			k.Caps = append(k.Caps, c)
		}
		slices.Sort(k.Caps)
	}
	b, err := json.Marshal(k)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("seccomp cache key: %w", err)
	}
	return sha256.Sum256(b), nil
}

// Generate returns Generate(spec, p), from the cache when it has it.
func (c *Cache) Generate(spec *specs.Spec, p Policy) (*specs.LinuxSeccomp, error) {
	key, err := keyOf(spec, p)
	if err != nil {
		return Generate(spec, p)
	}
	c.mu.Lock()
	hit := c.m[key]
	c.mu.Unlock()
	if hit != nil {
		return cloneProfile(hit), nil
	}
	file := c.fileOf(key)
	out := load(file)
	if out == nil {
		if out, err = Generate(spec, p); err != nil {
			return nil, err
		}
		if file != "" {
			// What the next shim will read, so that a profile compares
			// equal however it was obtained (JSON drops empty slices). A
			// failed write costs the next shim a Generate, nothing more.
			if rt := storeAndReload(file, out); rt != nil {
				out = rt
			}
		}
	}
	c.mu.Lock()
	if _, ok := c.m[key]; !ok {
		if len(c.order) >= c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
		c.m[key] = cloneProfile(out)
		c.order = append(c.order, key)
	}
	c.mu.Unlock()
	return out, nil
}

// cloneProfile deep-copies a profile.
func cloneProfile(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	out := *p
	out.DefaultErrnoRet = cloneUint(p.DefaultErrnoRet)
	out.Architectures = slices.Clone(p.Architectures)
	out.Flags = slices.Clone(p.Flags)
	out.Syscalls = make([]specs.LinuxSyscall, len(p.Syscalls))
	for i, r := range p.Syscalls {
		r.Names = slices.Clone(r.Names)
		r.Args = slices.Clone(r.Args)
		r.ErrnoRet = cloneUint(r.ErrnoRet)
		out.Syscalls[i] = r
	}
	if p.Syscalls == nil {
		out.Syscalls = nil
	}
	return &out
}

func cloneUint(p *uint) *uint {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
