package denials

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/denial"
)

// handOver sends data with fds attached over a fresh connection to a test
// listener and returns what receiveProcessState made of it.
func handOver(t *testing.T, data []byte, fds ...int) (*specs.ContainerProcessState, int, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "l.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			return
		}
		defer c.Close()
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		_, _, _ = c.WriteMsgUnix(data, oob, nil)
	}()
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	st, fd, err := receiveProcessState(c)
	_ = c.Close() // unblocks a sender we stopped reading from
	<-sent
	return st, fd, err
}

func pipeFds(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(p[0]); _ = unix.Close(p[1]) })
	return p[0], p[1]
}

func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

func TestReceiveProcessState(t *testing.T) {
	r, w := pipeFds(t)
	st := specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{"other", specs.SeccompFdName},
		Pid:      4242,
		Metadata: denial.ListenerMetadata(denial.ModeComplain, "p1"),
		State: specs.State{ID: "ctr-1", Pid: 4242, Annotations: map[string]string{
			cri.AnnotationSandboxNamespace: "team-a", "big": strings.Repeat("x", 200<<10),
		}},
	}
	data, _ := json.Marshal(st)
	got, fd, err := handOver(t, data, w, r)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got.State.ID != "ctr-1" || got.Pid != 4242 || got.State.Annotations[cri.AnnotationSandboxNamespace] != "team-a" {
		t.Errorf("state = %+v", got.State)
	}
	// The fd named seccompFd is the second one sent (our pipe's read end):
	// prove it by reading what the write end sends.
	if _, err := unix.Write(w, []byte("k")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, err := unix.Read(fd, buf); err != nil || n != 1 || buf[0] != 'k' {
		t.Errorf("received fd is not the seccompFd one: %d %v", n, err)
	}
	if fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); fl&unix.FD_CLOEXEC == 0 {
		t.Error("received fd is not close-on-exec")
	}
}

func TestReceiveProcessStateRejects(t *testing.T) {
	_, w := pipeFds(t)
	good := func(mut func(*specs.ContainerProcessState)) []byte {
		st := specs.ContainerProcessState{Fds: []string{specs.SeccompFdName}, State: specs.State{ID: "c"}}
		mut(&st)
		b, _ := json.Marshal(st)
		return b
	}
	for name, tc := range map[string]struct {
		data []byte
		fds  []int
	}{
		"no fd":          {good(func(*specs.ContainerProcessState) {}), nil},
		"no seccomp fd":  {good(func(s *specs.ContainerProcessState) { s.Fds = []string{"x"} }), []int{w}},
		"no container":   {good(func(s *specs.ContainerProcessState) { s.State.ID = "" }), []int{w}},
		"not json":       {[]byte("{nope"), []int{w}},
		"too large":      {[]byte(`{"x":"` + strings.Repeat("a", maxStateBytes) + `"}`), []int{w}},
		"too many fds":   {good(func(*specs.ContainerProcessState) {}), repeatFd(w, maxFds+1)},
		"empty hand-off": {nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			before := countFds(t)
			_, fd, err := handOver(t, tc.data, tc.fds...)
			if err == nil {
				_ = unix.Close(fd)
				t.Fatal("accepted")
			}
			if after := countFds(t); after > before {
				t.Errorf("leaked %d fds", after-before)
			}
		})
	}
}

func repeatFd(fd, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = fd
	}
	return out
}

func countFds(t *testing.T) int {
	t.Helper()
	n := 0
	for fd := 0; fd < 1024; fd++ {
		if isOpen(fd) {
			n++
		}
	}
	return n
}

func TestFallbackRegistration(t *testing.T) {
	reg := fallbackRegistration(&specs.ContainerProcessState{
		Metadata: denial.ListenerMetadata(denial.ModeComplain, "prof"),
		State: specs.State{ID: "abc", Annotations: map[string]string{
			cri.AnnotationContainerType:    cri.ContainerTypeContainer,
			cri.AnnotationSandboxNamespace: "ns", cri.AnnotationSandboxName: "pod", cri.AnnotationSandboxUID: "uid",
			cri.AnnotationContainerName: "app", cri.AnnotationImageName: "img",
		}},
	}, "")
	if reg.id != "abc" || reg.mode != denial.ModeComplain || reg.profile != "prof" ||
		reg.attr != (denial.Attribution{Namespace: "ns", Pod: "pod", PodUID: "uid", Container: "app", Image: "img"}) {
		t.Errorf("fallback = %+v", reg)
	}
	reg = fallbackRegistration(&specs.ContainerProcessState{State: specs.State{ID: "solo"}}, "")
	if reg.attr != (denial.Attribution{Namespace: "default", Pod: "solo", PodUID: "solo", Container: "solo"}) || reg.mode != denial.ModeEnforce {
		t.Errorf("standalone fallback = %+v", reg)
	}
}
