package record

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// Layout of a recording: one byte per syscall number, per ABI slot. A byte
// store is idempotent, so CPUs setting different calls at once need no
// atomic read-modify-write.
const (
	abiSlots  = 3
	maxNr     = 1024
	valueSize = abiSlots * maxNr
)

// ABI slots.
const (
	slotNative = 0 // x86_64, aarch64
	slotCompat = 1 // x86 (i386), arm
	slotX32    = 2 // x32 (amd64 only)
)

const (
	seccompModeFilter = 2          // SECCOMP_MODE_FILTER
	x86TSCompat       = 0x0002     // TS_COMPAT: a 32-bit syscall is active
	x32SyscallBit     = 0x40000000 // __X32_SYSCALL_BIT
	arm64PSRMode32    = 0x10       // PSR_MODE32_BIT
)

// layout is what the program needs to know about the running kernel.
type layout struct {
	goarch string
	// seccompMode is offsetof(struct task_struct, seccomp.mode).
	seccompMode int32
	// compat is where the ABI of the current call is told: on amd64
	// offsetof(struct task_struct, thread_info.status), whose TS_COMPAT the
	// kernel sets on every 32-bit entry (int 0x80 from 64-bit code too,
	// which a code-segment test would miss); on arm64 offsetof(struct
	// pt_regs, pstate), an AArch32 task's mode.
	compat int32
}

// kernelLayout reads the offsets from the kernel's BTF. The parsed BTF is
// large, so it is dropped once the offsets are known.
func kernelLayout(goarch string) (layout, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return layout{}, fmt.Errorf("kernel BTF (needs CONFIG_DEBUG_INFO_BTF): %w", err)
	}
	defer btf.FlushKernelSpec()
	l := layout{goarch: goarch}
	if l.seccompMode, err = offsetOf(spec, "task_struct", "seccomp", "mode"); err != nil {
		return layout{}, err
	}
	switch goarch {
	case "amd64":
		l.compat, err = offsetOf(spec, "task_struct", "thread_info", "status")
	case "arm64":
		l.compat, err = offsetOf(spec, "pt_regs", "pstate")
	default:
		err = fmt.Errorf("record mode supports amd64 and arm64, not %s", goarch)
	}
	if err != nil {
		return layout{}, err
	}
	return l, nil
}

// offsetOf returns the byte offset of a member path in a struct, looking
// through anonymous structs and unions as C does (arm64's pstate sits in
// one).
func offsetOf(spec *btf.Spec, typ string, path ...string) (int32, error) {
	var s *btf.Struct
	if err := spec.TypeByName(typ, &s); err != nil {
		return 0, fmt.Errorf("kernel BTF: struct %s: %w", typ, err)
	}
	var t btf.Type = s
	var off btf.Bits
	for _, name := range path {
		m, ok := findMember(t, name)
		if !ok {
			return 0, fmt.Errorf("kernel BTF: struct %s has no member %s", typ, name)
		}
		off += m.Offset
		t = btf.UnderlyingType(m.Type)
	}
	if off%8 != 0 {
		return 0, fmt.Errorf("kernel BTF: %s.%v is a bitfield", typ, path)
	}
	return int32(off.Bytes()), nil
}

func findMember(t btf.Type, name string) (btf.Member, bool) {
	var members []btf.Member
	switch c := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = c.Members
	case *btf.Union:
		members = c.Members
	default:
		return btf.Member{}, false
	}
	for _, m := range members {
		if m.Name == name {
			return m, true
		}
		if m.Name == "" {
			if inner, ok := findMember(m.Type, name); ok {
				inner.Offset += m.Offset
				return inner, true
			}
		}
	}
	return btf.Member{}, false
}

// program builds the sys_enter program. Its context is struct
// bpf_raw_tracepoint_args: args[0] is the task's struct pt_regs *, args[1]
// the syscall number. Registers: R6 context, R7 the cgroup's table, R8
// the number, R9 the task (amd64) or its registers (arm64).
func program(watched *ebpf.Map, l layout) (asm.Instructions, error) {
	if watched == nil || watched.FD() < 0 {
		return nil, errors.New("no map")
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetCurrentCgroupId.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, watched.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Reg(asm.R7, asm.R0),

		// Only calls made under a seccomp filter.
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Add.Imm(asm.R3, l.seccompMode),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, -16),
		asm.Mov.Imm(asm.R2, 4),
		asm.FnProbeReadKernel.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R1, asm.RFP, -16, asm.Word),
		asm.JNE.Imm(asm.R1, seccompModeFilter, "exit"),
		asm.LoadMem(asm.R8, asm.R6, 8, asm.DWord),
	}
	// The ABI of this call.
	switch l.goarch {
	case "amd64":
		insns = append(insns, readKernel(asm.R9, l.compat, 4)...)
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.RFP, -24, asm.Word),
			asm.And.Imm(asm.R1, x86TSCompat),
			asm.JNE.Imm(asm.R1, 0, "compat"),
			asm.Mov.Reg(asm.R2, asm.R8),
			asm.And.Imm(asm.R2, x32SyscallBit),
			asm.JEq.Imm(asm.R2, 0, "store"),
			asm.And.Imm(asm.R8, x32SyscallBit-1),
			asm.Add.Imm(asm.R7, slotX32*maxNr),
			asm.Ja.Label("store"),
		)
	case "arm64":
		insns = append(insns, asm.LoadMem(asm.R9, asm.R6, 0, asm.DWord))
		insns = append(insns, readKernel(asm.R9, l.compat, 8)...)
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.RFP, -24, asm.DWord),
			asm.And.Imm(asm.R1, arm64PSRMode32),
			asm.JNE.Imm(asm.R1, 0, "compat"),
			asm.Ja.Label("store"),
		)
	default:
		return nil, fmt.Errorf("record mode supports amd64 and arm64, not %s", l.goarch)
	}
	insns = append(insns,
		asm.Add.Imm(asm.R7, slotCompat*maxNr).WithSymbol("compat"),
		// Numbers outside the table (-1 for a call a tracer skipped) are
		// not calls anyone needs to allow.
		asm.JGT.Imm(asm.R8, maxNr-1, "exit").WithSymbol("store"),
		asm.Add.Reg(asm.R7, asm.R8),
		asm.StoreImm(asm.R7, 0, 1, asm.Byte),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
	return insns, nil
}

// readKernel reads size bytes at base+off into the stack at -24, leaving
// to "exit" if the read fails.
func readKernel(base asm.Register, off int32, size int32) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R3, base),
		asm.Add.Imm(asm.R3, off),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, -24),
		asm.Mov.Imm(asm.R2, size),
		asm.FnProbeReadKernel.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
	}
}
