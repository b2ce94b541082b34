// Package manager implements the shim binary's lifecycle commands for
// containerd: start (launch or reuse the pod's shim), delete (clean up after a
// dead shim from on-disk state alone) and -info (runtime features).
package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"

	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/shim/container"
	"github.com/stockade-dev/stockade/shim/task"
	"github.com/stockade-dev/stockade/version"
)

// RuntimeName is the containerd runtime type stockade implements.
const RuntimeName = "io.containerd.stockade.v1"

// groupAnnotations decide which containers share a shim: one shim per pod,
// keyed by the CRI sandbox ID; other containers get a shim each.
var groupAnnotations = []string{
	"io.containerd.runc.v2.group",
	cri.AnnotationSandboxID,
}

// New returns the shim manager.
func New() shim.Shim { return manager{} }

type manager struct{}

func (manager) Name() string { return RuntimeName }

// Start launches the shim server for this container's pod, or returns the
// address of the one already serving the pod.
func (manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	res := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	group := id
	if a, err := container.ReadAnnotations("."); err == nil {
		for _, k := range groupAnnotations {
			if v := a[k]; v != "" {
				group = v
				break
			}
		}
	}
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	address, err := shim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), group, false)
	if err != nil {
		return nil, err
	}
	// A filesystem socket, mode 0600 (never abstract: CVE-2020-15257).
	l, err := shim.NewSocket(address)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
		if shim.CanConnect(address) {
			// The pod's shim is running: it serves this container too.
			res.Address = address
			return res, nil
		}
		if err := shim.RemoveSocket(address); err != nil {
			return nil, fmt.Errorf("remove stale shim socket: %w", err)
		}
		if l, err = shim.NewSocket(address); err != nil {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			l.Close()
			_ = shim.RemoveSocket(address)
		}
	}()
	f, err := l.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()

	cmd, err := serverCommand(ctx, id, params)
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shim server: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
		}
	}()
	if err := joinShimCgroup(params, cmd.Process.Pid); err != nil {
		return nil, err
	}
	// Like the runc shim: one more than containerd's own score, so the
	// kernel kills the shim before containerd under memory pressure.
	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("adjust shim oom score: %w", err)
	}
	res.Address = address
	return res, nil
}

// joinShimCgroup moves the shim server into the cgroup containerd names in
// runc's options (ShimCgroup), as the runc shim does: operators use it to
// account a pod's shim to the pod. It is applied when the pod's shim starts;
// containers that join a running shim cannot move it again.
func joinShimCgroup(params *bootapi.BootstrapParams, pid int) error {
	shimCgroup, err := shimCgroupOf(params)
	if err != nil || shimCgroup == "" {
		return err
	}
	if cgroups.Mode() == cgroups.Unified {
		var cg *cgroup2.Manager
		if cg, err = cgroup2.Load(shimCgroup); err == nil {
			err = cg.AddProc(uint64(pid))
		}
	} else {
		var cg cgroup1.Cgroup
		if cg, err = cgroup1.Load(cgroup1.StaticPath(shimCgroup)); err == nil {
			err = cg.AddProc(uint64(pid))
		}
	}
	if err != nil {
		return fmt.Errorf("runtime option ShimCgroup %q: join: %w", shimCgroup, err)
	}
	return nil
}

// shimCgroupOf is the ShimCgroup of the runtime options, "" if none.
func shimCgroupOf(params *bootapi.BootstrapParams) (string, error) {
	var opts runcoptions.Options
	found, err := params.FindExtension(&opts)
	if err != nil {
		return "", fmt.Errorf("runtime options: %w", err)
	}
	if !found {
		return "", nil
	}
	return opts.ShimCgroup, nil
}

func serverCommand(ctx context.Context, id string, params *bootapi.BootstrapParams) (*exec.Cmd, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", params.GetContainerdGrpcAddress()}
	if params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	// A shim that stays in the cgroup it starts in warms the kernel's cgroup
	// attach lock as soon as it runs, before its first Create arrives
	// (container.WarmCgroupAttach). One that joins ShimCgroup must not: its
	// no-op move could land after the join and undo it.
	if shimCgroup, err := shimCgroupOf(params); err == nil && shimCgroup == "" {
		cmd.Env = append(cmd.Env, container.WarmAtStartEnv+"=1")
	}
	// Its own process group: signals to containerd's group do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// Stop cleans up a container whose shim is gone ("shim delete"), from the
// bundle (cwd is the bundle's sibling) and libcontainer's state alone.
//
// One shim serves a whole pod, but containerd runs "shim delete" only for the
// task it started the shim with — the sandbox. So when the sandbox is cleaned
// up, the pod's other containers are too: otherwise they would run on as
// orphans while Kubernetes believes them exited.
func (manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return shim.StopStatus{}, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	dir := filepath.Dir(cwd)
	// By the time containerd gets here it may have removed the members'
	// bundles already, so they are found in libcontainer's state.
	for member, bundle := range container.PodMembers(task.StateRoot(ns), id) {
		cleanup(ctx, ns, bundle, member)
	}
	pid := cleanup(ctx, ns, filepath.Join(dir, id), id)
	// The dead shim's socket would otherwise stay behind (and block the
	// next shim of a pod with the same sandbox ID).
	if addr := shimAddress(filepath.Join(dir, id)); addr != "" && !shim.CanConnect(addr) {
		_ = shim.RemoveSocket(addr)
	}
	return shim.StopStatus{
		ExitedAt:   time.Now(),
		ExitStatus: 128 + int(unix.SIGKILL),
		Pid:        pid,
	}, nil
}

// shimAddress reads the shim address containerd recorded in a bundle.
func shimAddress(bundle string) string {
	data, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json"))
	if err != nil {
		return ""
	}
	var b struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(data, &b) != nil {
		return ""
	}
	return b.Address
}

// cleanup removes one container's processes, mounts, cgroup and state, and
// what stockade held for it; it returns the init pid it had.
func cleanup(ctx context.Context, ns, bundle, id string) int {
	pid, err := container.Cleanup(ctx, task.StateRoot(ns), id, bundle)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container_id", id).Warn("cleanup")
	}
	task.CleanupDead(ctx, ns, id, bundle)
	return pid
}

// Info reports the runtime's version and OCI features.
func (m manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	info := &types.RuntimeInfo{
		Name:    m.Name(),
		Version: &types.RuntimeVersion{Version: version.Version, Revision: version.Revision},
	}
	feat, err := typeurl.MarshalAnyToProto(container.Features())
	if err != nil {
		return nil, fmt.Errorf("marshal features: %w", err)
	}
	info.Features = feat
	return info, nil
}
