//go:build cgo && seccomp

package seccomp

import (
	"encoding/binary"
	"fmt"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/net/bpf"
)

// Seccomp return values (linux/seccomp.h).
const (
	retAllow      = 0x7fff0000
	retKillThread = 0x00000000
	retLog        = 0x7ffc0000
	retErrno      = 0x00050000
	retEPERM      = retErrno | 1
	retENOSYS     = retErrno | 38
)

// abi is one syscall ABI a filter is run for.
type abi struct {
	name  specs.Arch
	scmp  libseccomp.ScmpArch
	audit uint32 // AUDIT_ARCH_* as the kernel puts it in seccomp_data.arch
	// bits32: libseccomp compares only the low 32 bits of arguments. True
	// for x86 and arm, and for x32 too: libseccomp treats x32 as a 32-bit
	// ABI although its syscall arguments are 64-bit registers.
	bits32 bool
	// ranges of syscall numbers to enumerate: x32 numbers carry bit 30,
	// arm has private syscalls from 0xf0000.
	ranges [][2]int
}

var (
	abiX86_64  = abi{specs.ArchX86_64, libseccomp.ArchAMD64, 0xc000003e, false, [][2]int{{0, 1024}}}
	abiX86     = abi{specs.ArchX86, libseccomp.ArchX86, 0x40000003, true, [][2]int{{0, 1024}}}
	abiX32     = abi{specs.ArchX32, libseccomp.ArchX32, 0xc000003e, true, [][2]int{{0x40000000, 0x40000000 + 1024}}}
	abiAARCH64 = abi{specs.ArchAARCH64, libseccomp.ArchARM64, 0xc00000b7, false, [][2]int{{0, 1024}}}
	abiARM     = abi{specs.ArchARM, libseccomp.ArchARM, 0x40000028, true, [][2]int{{0, 1024}, {0xf0000, 0xf0100}}}
)

// families maps a GOARCH to its native ABI and every ABI its profile covers.
var families = map[string][]abi{
	"amd64": {abiX86_64, abiX86, abiX32},
	"arm64": {abiAARCH64, abiARM},
}

// filter is a compiled profile run by golang.org/x/net/bpf's VM, which
// implements every instruction libseccomp emits (absolute word loads, ALU
// with constants, conditional jumps, returns).
type filter struct{ vm *bpf.VM }

func compileVM(t testing.TB, p *specs.LinuxSeccomp, native specs.Arch) filter {
	t.Helper()
	prog, err := Compile(p, native)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	ins := make([]bpf.Instruction, len(prog))
	for i, s := range prog {
		ins[i] = bpf.RawInstruction{Op: s.Code, Jt: s.Jt, Jf: s.Jf, K: s.K}.Disassemble()
		if _, ok := ins[i].(bpf.RawInstruction); ok {
			t.Fatalf("instruction %d (%#v) is not one the VM implements", i, s)
		}
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	return filter{vm}
}

// run evaluates struct seccomp_data{nr, arch, ip, args}. The VM loads words
// big-endian while the kernel's seccomp_data is little-endian on these
// ABIs, so each 32-bit word is stored big-endian at its little-endian
// place: the low half of an argument first.
func (f filter) run(a abi, nr int, args [6]uint64) uint32 {
	in := make([]byte, 64)
	binary.BigEndian.PutUint32(in[0:], uint32(nr))
	binary.BigEndian.PutUint32(in[4:], a.audit)
	for i, v := range args {
		if a.bits32 {
			v &= 0xffffffff
		}
		binary.BigEndian.PutUint32(in[16+8*i:], uint32(v))
		binary.BigEndian.PutUint32(in[20+8*i:], uint32(v>>32))
	}
	ret, err := f.vm.Run(in)
	if err != nil {
		panic(err)
	}
	return uint32(ret)
}

// syscallsOf returns every syscall number libseccomp resolves on a, by name.
func syscallsOf(a abi) map[int]string {
	out := map[int]string{}
	for _, r := range a.ranges {
		for nr := r[0]; nr < r[1]; nr++ {
			if name, err := libseccomp.ScmpSyscall(nr).GetNameByArch(a.scmp); err == nil {
				out[nr] = name
			}
		}
	}
	return out
}

// expected is what the kernel would return for a call per the profile as
// Evaluate reads it, to cross-check libseccomp's compilation.
func expected(p *specs.LinuxSeccomp, a abi, name string, args [6]uint64) uint32 {
	if a.bits32 {
		for i := range args {
			args[i] &= 0xffffffff
		}
	}
	switch act, errno := Evaluate(p, name, args); act {
	case specs.ActAllow:
		return retAllow
	case specs.ActLog:
		return retLog
	case specs.ActErrno:
		return retErrno | uint32(errno)
	default:
		panic(fmt.Sprintf("unexpected action %s", act))
	}
}
