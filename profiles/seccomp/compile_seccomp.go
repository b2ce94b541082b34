//go:build cgo && seccomp

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// CompileSupported is true when the package was built with libseccomp
// (cgo and the seccomp build tag), as the shim must be.
const CompileSupported = true

// LibraryVersion returns the version of the libseccomp in use.
func LibraryVersion() (major, minor, micro uint, err error) {
	major, minor, micro = libseccomp.GetLibraryVersion()
	return major, minor, micro, nil
}

// maxInstructions is the kernel's BPF_MAXINSNS: a longer filter is refused
// at load time, after the container has been created.
const maxInstructions = 4096

// Compile turns p into the classic-BPF program runc would load on a host
// whose native ABI is native, translating the profile exactly as runc's
// libcontainer does (one rule per name, repeated argument indexes ORed,
// rules equal to the default action skipped, names libseccomp does not know
// ignored). It lets tests run a profile without loading it, and lets the
// shim refuse a profile the kernel would reject before anything starts.
func Compile(p *specs.LinuxSeccomp, native specs.Arch) ([]unix.SockFilter, error) {
	def, err := action(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("create filter: %w", err)
	}
	defer f.Release()
	if err := setArches(f, native, p.Architectures); err != nil {
		return nil, err
	}
	for _, fl := range p.Flags {
		switch fl {
		case specs.LinuxSeccompFlagLog:
			err = f.SetLogBit(true)
		case specs.LinuxSeccompFlagSpecAllow:
			err = f.SetSSB(true)
		case specs.LinuxSeccompFlagWaitKillableRecv:
			err = f.SetWaitKill(true)
		}
		if err != nil {
			return nil, fmt.Errorf("flag %s: %w", fl, err)
		}
	}
	n := 0
	for _, r := range p.Syscalls {
		n += len(r.Names)
	}
	// runc switches libseccomp to a binary-tree layout past 32 rules; the
	// instruction count, and so the size check, depends on it.
	if n > 32 {
		if err := f.SetOptimize(2); err != nil {
			return nil, fmt.Errorf("optimize: %w", err)
		}
	}
	for i, r := range p.Syscalls {
		if err := addRule(f, def, r); err != nil {
			return nil, fmt.Errorf("syscalls[%d]: %w", i, err)
		}
	}
	prog, err := export(f)
	if err != nil {
		return nil, err
	}
	if len(prog) > maxInstructions {
		return nil, fmt.Errorf("filter has %d instructions, the kernel accepts at most %d", len(prog), maxInstructions)
	}
	return prog, nil
}

func setArches(f *libseccomp.ScmpFilter, native specs.Arch, extra []specs.Arch) error {
	host, err := libseccomp.GetNativeArch()
	if err != nil {
		return fmt.Errorf("native arch: %w", err)
	}
	want := map[libseccomp.ScmpArch]bool{}
	for _, a := range append([]specs.Arch{native}, extra...) {
		sa, err := libseccomp.GetArchFromString(archName(a))
		if err != nil {
			return fmt.Errorf("architecture %s: %w", a, err)
		}
		want[sa] = true
		if err := f.AddArch(sa); err != nil {
			return fmt.Errorf("architecture %s: %w", a, err)
		}
	}
	// A filter starts with the host's ABI; drop it when compiling for
	// another host so the program is the one that host would load.
	if !want[host] {
		if err := f.RemoveArch(host); err != nil {
			return fmt.Errorf("remove host architecture: %w", err)
		}
	}
	return nil
}

// archName maps SCMP_ARCH_X86_64 to libseccomp's "amd64"-style names.
func archName(a specs.Arch) string {
	switch a {
	case specs.ArchX86_64:
		return "amd64"
	case specs.ArchAARCH64:
		return "arm64"
	case specs.ArchX86:
		return "x86"
	case specs.ArchX32:
		return "x32"
	case specs.ArchARM:
		return "arm"
	}
	return string(a)
}

func addRule(f *libseccomp.ScmpFilter, def libseccomp.ScmpAction, r specs.LinuxSyscall) error {
	act, err := action(r.Action, r.ErrnoRet)
	if err != nil {
		return fmt.Errorf("action: %w", err)
	}
	if act == def {
		return nil // libseccomp rejects rules that repeat the default
	}
	var conds []libseccomp.ScmpCondition
	perIndex := map[uint]int{}
	for _, a := range r.Args {
		op, ok := operators[a.Op]
		if !ok {
			return fmt.Errorf("unknown operator %q", a.Op)
		}
		c, err := libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		if err != nil {
			return err
		}
		conds = append(conds, c)
		perIndex[a.Index]++
	}
	repeated := false
	for _, k := range perIndex {
		repeated = repeated || k > 1
	}
	for _, name := range r.Names {
		// runc resolves names on the host ABI; libseccomp translates the
		// number to every ABI in the filter.
		nr, err := libseccomp.GetSyscallFromName(name)
		if err != nil {
			continue
		}
		switch {
		case len(conds) == 0:
			err = f.AddRule(nr, act)
		case repeated:
			for _, c := range conds {
				if err = f.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
					break
				}
			}
		default:
			err = f.AddRuleConditional(nr, act, conds)
		}
		if err != nil {
			return fmt.Errorf("syscall %s: %w", name, err)
		}
	}
	return nil
}

var operators = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

func action(a specs.LinuxSeccompAction, errno *uint) (libseccomp.ScmpAction, error) {
	ret := int16(unix.EPERM)
	if errno != nil {
		ret = int16(*errno)
	}
	switch a {
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(ret), nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActNotify:
		return libseccomp.ActNotify, nil
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(ret), nil
	}
	return libseccomp.ActInvalid, fmt.Errorf("unknown action %q", a)
}

// export writes the program through a memfd: libseccomp 2.5 only exports
// to a file descriptor.
func export(f *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd: %w", err)
	}
	file := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("export bpf: %w", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("export bpf: %w", err)
	}
	raw, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("export bpf: %w", err)
	}
	if len(raw)%8 != 0 {
		return nil, errors.New("export bpf: truncated program")
	}
	prog := make([]unix.SockFilter, len(raw)/8)
	for i := range prog {
		b := raw[i*8:]
		// libseccomp writes struct sock_filter in host byte order.
		prog[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:]),
		}
	}
	return prog, nil
}
