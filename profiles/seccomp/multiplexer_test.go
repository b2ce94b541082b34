//go:build cgo && seccomp

package seccomp

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestPodMultiplexerConditions: a pod that allows socketcall or ipc only
// for some arguments gets them denied whole on amd64, because libseccomp
// would otherwise fold socket's and semop's rules into theirs on 32-bit x86
// and refuse the filter. The profile must compile in both modes (the fuzzer
// found the complain-mode profile failing with "file exists").
func TestPodMultiplexerConditions(t *testing.T) {
	pod := allowList(
		specs.LinuxSyscall{Names: []string{"socketcall", "ipc"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
		specs.LinuxSyscall{Names: []string{"semop"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 1, Op: specs.OpEqualTo}}},
	)
	for _, mode := range []Mode{ModeEnforce, ModeComplain} {
		p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "amd64", Mode: mode, Pod: pod})
		checkShape(t, p, "amd64", mode)
		want := "eperm"
		if mode == ModeComplain {
			want = "log"
		}
		for _, name := range []string{"socketcall", "ipc"} {
			if got := verdictOf(p, name, [6]uint64{1}); got != want {
				t.Errorf("%s: %s(1) = %s, want %s", mode, name, got, want)
			}
		}
		if got := verdictOf(p, "socket", [6]uint64{unix.AF_INET}); got != "allow" {
			t.Errorf("%s: socket(AF_INET) = %s, want allow", mode, got)
		}
		// On the BPF libseccomp builds, for the 32-bit ABI too.
		vm := compileVM(t, p, specs.ArchX86_64)
		for nr, name := range map[int]string{102: "socketcall", 117: "ipc"} {
			if got, want := vm.run(abiX86, nr, [6]uint64{1}), expected(p, abiX86, name, [6]uint64{1}); got != want {
				t.Errorf("%s: x86 %s(1) BPF %#x, want %#x", mode, name, got, want)
			}
		}
	}
	// arm has no multiplexers: the pod's conditions stay.
	p := mustGenerate(t, specWith(defaultCaps), Policy{Arch: "arm64", Pod: pod})
	if got := verdictOf(p, "semop", [6]uint64{0, 0, 1}); got != "allow" {
		t.Errorf("arm64 semop(.., 1) = %s, want allow", got)
	}
}
