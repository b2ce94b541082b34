package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// maxRecordings bounds the containers one shim records at once.
const maxRecordings = 1024

// Recorder owns the program and map of one shim. The program is attached
// while at least one Recording is open and detached with the last, so a
// node pays for the tracepoint only while something is recorded.
type Recorder struct {
	goarch string

	mu      sync.Mutex
	layout  *layout
	watched *ebpf.Map
	prog    *ebpf.Program
	tp      link.Link
	open    int
}

// New returns a Recorder for the machine's architecture. Nothing is loaded
// until the first Watch.
func New() *Recorder { return &Recorder{goarch: runtime.GOARCH} }

// Recording is one container's recording.
type Recording struct {
	r        *Recorder
	cgroupID uint64
	once     sync.Once
}

// Watch starts recording the processes of the cgroup v2 directory dir,
// which must exist and be empty of processes that are not yet to be
// recorded. Errors are of kind FailedPrecondition when the host lacks what
// recording needs.
func (r *Recorder) Watch(ctx context.Context, dir string) (*Recording, error) {
	id, err := CgroupID(dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.attachLocked(); err != nil {
		return nil, fmt.Errorf("record mode: %w: %w", err, errdefs.ErrFailedPrecondition)
	}
	zero := make([]byte, valueSize)
	if err := r.watched.Update(id, zero, ebpf.UpdateNoExist); err != nil {
		r.detachIfIdleLocked(ctx)
		if errors.Is(err, ebpf.ErrKeyExist) {
			return nil, fmt.Errorf("cgroup %s is already recorded: %w", dir, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("record cgroup %s: %w", dir, err)
	}
	r.open++
	log.G(ctx).WithField("cgroup", dir).WithField("cgroup_id", id).Debug("recording syscalls")
	return &Recording{r: r, cgroupID: id}, nil
}

func (r *Recorder) attachLocked() error {
	if r.tp != nil {
		return nil
	}
	if r.layout == nil {
		l, err := kernelLayout(r.goarch)
		if err != nil {
			return err
		}
		r.layout = &l
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "stockade_rec",
		Type:       ebpf.Hash,
		KeySize:    8,
		ValueSize:  valueSize,
		MaxEntries: maxRecordings,
	})
	if err != nil {
		return fmt.Errorf("create map: %w", err)
	}
	insns, err := program(m, *r.layout)
	if err != nil {
		m.Close()
		return err
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "stockade_rec",
		Type:         ebpf.RawTracepoint,
		Instructions: insns,
		// The helpers reading the task and its registers are GPL-only.
		License: "Dual MIT/GPL",
	})
	if err != nil {
		m.Close()
		return fmt.Errorf("load program: %w", err)
	}
	tp, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: p})
	if err != nil {
		p.Close()
		m.Close()
		return fmt.Errorf("attach to sys_enter: %w", err)
	}
	r.watched, r.prog, r.tp = m, p, tp
	return nil
}

func (r *Recorder) detachIfIdleLocked(ctx context.Context) {
	if r.open > 0 || r.tp == nil {
		return
	}
	for _, c := range []interface{ Close() error }{r.tp, r.prog, r.watched} {
		if err := c.Close(); err != nil {
			log.G(ctx).WithError(err).Warn("record: release program")
		}
	}
	r.tp, r.prog, r.watched = nil, nil, nil
}

// Attached reports whether the program is attached (for tests).
func (r *Recorder) Attached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tp != nil
}

// Close detaches the program whatever is still open.
func (r *Recorder) Close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = 0
	r.detachIfIdleLocked(ctx)
}

// Syscalls returns what has been recorded so far, by seccomp architecture,
// each list sorted. It can be called while the container runs.
func (rec *Recording) Syscalls() (map[specs.Arch][]string, error) {
	r := rec.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watched == nil {
		return nil, fmt.Errorf("recording of cgroup %d is closed: %w", rec.cgroupID, errdefs.ErrFailedPrecondition)
	}
	var seen []byte
	if err := r.watched.Lookup(rec.cgroupID, &seen); err != nil {
		return nil, fmt.Errorf("read recording of cgroup %d: %w", rec.cgroupID, err)
	}
	return names(r.goarch, seen)
}

// Stop ends the recording. It is safe to call more than once.
func (rec *Recording) Stop(ctx context.Context) {
	rec.once.Do(func() {
		r := rec.r
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.watched != nil {
			if err := r.watched.Delete(rec.cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				log.G(ctx).WithError(err).Warn("record: forget cgroup")
			}
		}
		if r.open > 0 {
			r.open--
		}
		r.detachIfIdleLocked(ctx)
	})
}

// names turns the byte table into syscall names, per ABI.
func names(goarch string, seen []byte) (map[specs.Arch][]string, error) {
	if len(seen) != valueSize {
		return nil, fmt.Errorf("recording has %d bytes, want %d", len(seen), valueSize)
	}
	type abi struct {
		arch specs.Arch
		scmp libseccomp.ScmpArch
		base int
	}
	var abis [abiSlots]*abi
	switch goarch {
	case "amd64":
		abis[slotNative] = &abi{specs.ArchX86_64, libseccomp.ArchAMD64, 0}
		abis[slotCompat] = &abi{specs.ArchX86, libseccomp.ArchX86, 0}
		abis[slotX32] = &abi{specs.ArchX32, libseccomp.ArchX32, x32SyscallBit}
	case "arm64":
		abis[slotNative] = &abi{specs.ArchAARCH64, libseccomp.ArchARM64, 0}
		abis[slotCompat] = &abi{specs.ArchARM, libseccomp.ArchARM, 0}
	default:
		return nil, fmt.Errorf("record mode supports amd64 and arm64, not %s", goarch)
	}
	out := map[specs.Arch][]string{}
	for slot, a := range abis {
		if a == nil {
			continue
		}
		for nr := range maxNr {
			if seen[slot*maxNr+nr] == 0 {
				continue
			}
			name, err := libseccomp.ScmpSyscall(a.base + nr).GetNameByArch(a.scmp)
			if err != nil {
				// A number libseccomp does not know cannot be named in a
				// profile; the default action already answers it.
				continue
			}
			out[a.arch] = append(out[a.arch], name)
		}
	}
	for k, v := range out {
		slices.Sort(v)
		out[k] = slices.Compact(v)
	}
	return out, nil
}

// CgroupID is the id the kernel gives the cgroup v2 directory dir: what
// bpf_get_current_cgroup_id returns for its tasks.
func CgroupID(dir string) (uint64, error) {
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", dir, err)
	}
	b := h.Bytes()
	if len(b) != 8 {
		return 0, fmt.Errorf("cgroup %s: file handle of %d bytes, not a cgroup v2 directory", dir, len(b))
	}
	return binary.NativeEndian.Uint64(b), nil
}
