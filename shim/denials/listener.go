package denials

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/denial"
)

const (
	// connTimeout bounds one hand-over. libcontainer writes the state and
	// closes at once; a peer that stalls must not pin a goroutine.
	connTimeout = 10 * time.Second
	// maxStateBytes bounds the state JSON. Kubernetes caps a pod's
	// annotations at 256 KiB, and the state carries them.
	maxStateBytes = 1 << 20
	// maxFds is how many fds one message may carry; extras are closed.
	maxFds = 16
)

// fallbackRegistration attributes a container the shim did not register
// (it should not happen) from what libcontainer sends: the container ID and
// the spec's CRI annotations, read by the same function the hooks use.
func fallbackRegistration(st *specs.ContainerProcessState, containerdNS string) *registration {
	id := st.State.ID
	attr := denial.For(cri.PodFromAnnotations(id, st.State.Annotations), containerdNS, id)
	mode, profile := denial.ParseListenerMetadata(st.Metadata)
	return &registration{id: id, attr: attr, mode: mode, profile: profile}
}

func (a *Agent) acceptLoop() {
	defer a.loopsEnd.Done()
	for {
		c, err := a.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.G(a.ctx).WithError(err).Warn("denial agent accept failed")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go a.handleConn(c)
	}
}

// handleConn takes one hand-over: a ContainerProcessState and its fds.
func (a *Agent) handleConn(c *net.UnixConn) {
	defer c.Close()
	st, fd, err := receiveProcessState(c)
	if err != nil {
		// Closing the fd (done by receiveProcessState) makes the kernel
		// fail this process's notified syscalls with ENOSYS: still denied.
		log.G(a.ctx).WithError(err).Error("failed to take seccomp notify fd")
		return
	}
	reg := a.registration(st.State.ID)
	if reg == nil {
		reg = fallbackRegistration(st, "")
		log.G(a.ctx).WithField("container_id", st.State.ID).Warn("seccomp notify fd for an unregistered container; attributing from its annotations")
	}
	src, err := newFDSource(fd, a.recv)
	if err != nil {
		log.G(a.ctx).WithError(err).WithField("container_id", reg.id).Error("failed to serve seccomp notify fd")
		return
	}
	a.serve(reg, src)
}

// receiveProcessState reads what libcontainer's sendContainerProcessState
// writes: one JSON specs.ContainerProcessState whose Fds names the fds passed
// with SCM_RIGHTS, then EOF. It returns the fd named specs.SeccompFdName and
// closes every other fd it received.
func receiveProcessState(c *net.UnixConn) (*specs.ContainerProcessState, int, error) {
	if err := checkPeer(c); err != nil {
		return nil, -1, err
	}
	_ = c.SetDeadline(time.Now().Add(connTimeout))
	var (
		data []byte
		fds  []int
		buf  = make([]byte, 64<<10)
		oob  = make([]byte, unix.CmsgSpace(maxFds*4))
	)
	closeAll := func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
	for {
		n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				closeAll()
				return nil, -1, perr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			closeAll()
			return nil, -1, fmt.Errorf("seccomp agent: more than %d fds in one message", maxFds)
		}
		data = append(data, buf[:n]...)
		if len(data) > maxStateBytes {
			closeAll()
			return nil, -1, fmt.Errorf("seccomp agent: container process state larger than %d bytes", maxStateBytes)
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			break
		}
		if err != nil {
			closeAll()
			return nil, -1, fmt.Errorf("seccomp agent: failed to read container process state: %w", err)
		}
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(data, &st); err != nil {
		closeAll()
		return nil, -1, fmt.Errorf("seccomp agent: bad container process state: %w", err)
	}
	if st.State.ID == "" {
		closeAll()
		return nil, -1, errors.New("seccomp agent: container process state without a container ID")
	}
	fd := -1
	for i, name := range st.Fds {
		if name == specs.SeccompFdName && i < len(fds) {
			fd = fds[i]
			fds[i] = -1
			break
		}
	}
	for _, other := range fds {
		if other >= 0 {
			_ = unix.Close(other)
		}
	}
	if fd < 0 {
		return nil, -1, fmt.Errorf("seccomp agent: no %s fd from container %s", specs.SeccompFdName, st.State.ID)
	}
	return &st, fd, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("seccomp agent: bad control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// checkPeer admits only our own user (root, for the shim). The socket's
// directory and mode already keep others out; this also refuses a peer that
// got hold of a connected fd some other way.
func checkPeer(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("seccomp agent: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("seccomp agent: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("seccomp agent: failed to read peer credentials: %w", cerr)
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("seccomp agent: refusing peer pid %d uid %d", cred.Pid, cred.Uid)
	}
	return nil
}
