package hooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/internal/ocimount"
	"github.com/stockade-dev/stockade/node/idalloc"
	"github.com/stockade-dev/stockade/node/idmapfs"
	"github.com/stockade-dev/stockade/node/netns"
	"github.com/stockade-dev/stockade/profiles/userns"
)

// RangeAllocator is what the userns step needs from the range allocator.
// *idalloc.Allocator implements it; tests may wrap it to inject faults.
type RangeAllocator interface {
	Allocate(key string, owner idalloc.Owner) (userns.Range, error)
	Lookup(key string) (idalloc.Lease, error)
	Release(key string) error
	Reclaim(alive func(idalloc.Lease) bool) ([]idalloc.Lease, error)
	// RangeSize is the size of the ranges Allocate hands out.
	RangeSize() uint32
}

var _ RangeAllocator = (*idalloc.Allocator)(nil)

// UserNSStep puts every pod in its own user namespace with its own host ID
// range, shared by all containers of the pod (like Kubernetes'
// hostUsers: false, but for every pod).
//
// The sandbox container (or a standalone container, its own pod) leases the
// range under the pod's sandbox ID and gets a new user namespace; the other
// containers of the pod join the sandbox's. The lease outlives the create:
// its Undo (run by the pipeline's rollback) releases it when the sandbox's
// creation fails, and the shim calls Release when the pod is gone.
type UserNSStep struct {
	alloc RangeAllocator
	owner idalloc.Owner

	// Seams for tests; the defaults touch the real system.
	procRoot        string
	idmapSupported  func(path string) (bool, string, error)
	writeNetSysctls func(netnsPath string, sysctls map[string]string) error
}

var _ Step = (*UserNSStep)(nil)

// NewUserNSStep builds the step over an allocator; owner is recorded in new
// leases (the shim process, idalloc.CurrentOwner()).
func NewUserNSStep(alloc RangeAllocator, owner idalloc.Owner) *UserNSStep {
	return &UserNSStep{
		alloc:           alloc,
		owner:           owner,
		procRoot:        "/proc",
		idmapSupported:  idmapfs.IDMapSupported,
		writeNetSysctls: netns.WriteNetSysctls,
	}
}

// NewUserNSStepFromConfig builds the step for a node: the pool from
// userns.pool or /etc/subuid + /etc/subgid, leases under
// c.UserNSStateDir(), owned by the calling process. With userns disabled
// the step has no allocator and Apply does nothing.
func NewUserNSStepFromConfig(c *config.Config) (*UserNSStep, error) {
	if !c.UserNS.Enabled {
		return NewUserNSStep(nil, idalloc.Owner{}), nil
	}
	pool, err := idalloc.LoadPool(c.UserNS.Pool, userns.SubUIDPath, userns.SubGIDPath)
	if err != nil {
		return nil, fmt.Errorf("userns: %w", err)
	}
	alloc, err := idalloc.NewSizedAllocator(c.UserNSStateDir(), pool, c.UserNS.PodRangeSize())
	if err != nil {
		return nil, fmt.Errorf("userns: key userns.range_size or userns.pool: %w", err)
	}
	owner, err := idalloc.CurrentOwner()
	if err != nil {
		return nil, fmt.Errorf("userns: %w", err)
	}
	return NewUserNSStep(alloc, owner), nil
}

// ReleaseUserNSIn frees the range of pod sandboxID in containerd namespace
// ns without a running pipeline, for "shim delete" cleaning up after a dead
// shim. Release needs no pool, so a pool that no longer resolves cannot
// block the cleanup.
func ReleaseUserNSIn(ctx context.Context, c *config.Config, ns, sandboxID string) error {
	alloc, err := idalloc.NewAllocator(c.UserNSStateDir(), userns.DefaultPool())
	if err != nil {
		return fmt.Errorf("userns: %w", err)
	}
	return NewUserNSStep(alloc, idalloc.Owner{}).Release(ctx, ns, sandboxID)
}

// ReleaseUserNS is ReleaseUserNSIn for callers that do not know the
// containerd namespace: since the same ID may name a live pod of another
// namespace, it releases only the leases of sandboxID (any namespace,
// either lease version) whose owning shim has died.
//
// Deprecated: use ReleaseUserNSIn.
func ReleaseUserNS(ctx context.Context, c *config.Config, sandboxID string) error {
	alloc, err := idalloc.NewAllocator(c.UserNSStateDir(), userns.DefaultPool())
	if err != nil {
		return fmt.Errorf("userns: %w", err)
	}
	_, err = NewUserNSStep(alloc, idalloc.Owner{}).Reclaim(ctx, func(l idalloc.Lease) bool {
		return l.ID != sandboxID || l.Owner.Alive()
	})
	return err
}

// rangeSize is the size of the ranges new pods get.
func (s *UserNSStep) rangeSize() uint32 {
	if s.alloc == nil {
		return userns.RangeSize
	}
	return s.alloc.RangeSize()
}

// Name implements Step.
func (s *UserNSStep) Name() string { return "userns" }

// Release frees the ID range of pod sandboxID in containerd namespace ns.
// The shim calls it once the pod's sandbox has been deleted and no process
// of the pod is left: a released range goes to the next pod. Releasing
// twice is harmless. A lease of the pod written before lease keys carried
// the namespace is released too, if its owner has died.
func (s *UserNSStep) Release(ctx context.Context, ns, sandboxID string) error {
	if s.alloc == nil {
		return nil
	}
	key, err := idalloc.LeaseKey(ns, sandboxID)
	if err != nil {
		return fmt.Errorf("userns: release range of pod %s: %w: %w", sandboxID, err, errdefs.ErrInvalidArgument)
	}
	if err := s.alloc.Release(key); err != nil {
		return fmt.Errorf("userns: release range of pod %s: %w", key, err)
	}
	log.G(ctx).WithField("pod_sandbox", key).Debug("userns range released")
	return s.releaseBare(ctx, sandboxID)
}

// releaseBare releases a version 1 lease (keyed by the bare ID) whose owner
// no longer runs. One whose owner runs belongs to a pod of a shim started
// before the upgrade, maybe in another namespace: that shim releases it.
func (s *UserNSStep) releaseBare(ctx context.Context, sandboxID string) error {
	if s.alloc == nil {
		return nil
	}
	l, err := s.alloc.Lookup(sandboxID)
	switch {
	case errors.Is(err, userns.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("userns: look up version 1 lease %s: %w", sandboxID, err)
	case l.Namespace != "" || l.Owner.Alive():
		return nil
	}
	if err := s.alloc.Release(sandboxID); err != nil {
		return fmt.Errorf("userns: release version 1 lease %s: %w", sandboxID, err)
	}
	log.G(ctx).WithField("pod_sandbox", sandboxID).Info("userns: version 1 range lease of a dead shim released")
	return nil
}

// Reclaim releases the leases for which alive is false (see
// idalloc.Allocator.Reclaim) and returns them.
func (s *UserNSStep) Reclaim(ctx context.Context, alive func(idalloc.Lease) bool) ([]idalloc.Lease, error) {
	if s.alloc == nil {
		return nil, nil
	}
	released, err := s.alloc.Reclaim(func(l idalloc.Lease) bool {
		// Liveness tests written for version 1 leases look the pod up by
		// Key, which was the bare sandbox ID (the shim's podAlive globs
		// <state root>/*/<Key>/state.json). They see the bare ID here, so
		// they keep finding the pod's state: a lease is never reclaimed
		// while its pod's containers may still run. Looking across
		// namespaces can only keep a lease longer, never free it early.
		l.Key = l.ID
		return alive(l)
	})
	for _, l := range released {
		log.G(ctx).WithFields(log.Fields{"pod_sandbox": l.Key, "range": l.Range.String(), "owner": l.Owner.String()}).
			Info("userns range of a dead pod reclaimed")
	}
	return released, err
}

// Apply implements Step.
func (s *UserNSStep) Apply(ctx context.Context, c *Container) (Undo, error) {
	if c.Node == nil || !c.Node.UserNS.Enabled {
		return nil, nil
	}
	spec := c.Spec
	if spec == nil || spec.Linux == nil {
		return nil, fmt.Errorf("spec has no linux section: %w", errdefs.ErrInvalidArgument)
	}
	if ns, ok := namespaceOf(spec, specs.UserNamespace); ok && (ns.Path != "" || len(spec.Linux.UIDMappings) > 0) {
		// The kubelet asked for hostUsers: false, and containerd's CRI has
		// already made the pod's user namespace and idmapped what needs it.
		// A second mapping on top would nest namespaces and double-map IDs.
		c.Result.UIDMap = slices.Clone(spec.Linux.UIDMappings)
		c.Result.GIDMap = slices.Clone(spec.Linux.GIDMappings)
		log.G(ctx).Debug("userns: keeping the user namespace requested by the kubelet")
		return nil, nil
	}
	if reason := incompatibility(spec); reason != "" {
		if c.Node.UserNS.Exempt(c.Pod.Namespace) {
			log.G(ctx).WithField("reason", reason).Info("userns: pod exempt from remapping by node policy")
			return nil, nil
		}
		return nil, fmt.Errorf("pod %s cannot run in a user namespace: %s (userns.host_namespace_pods is %q; "+
			"set it to %q or list the namespace in userns.exempt_namespaces to run such pods unremapped): %w",
			podRef(c), reason, c.Node.UserNS.HostNamespacePods, config.HostNamespacePodsExempt, errdefs.ErrFailedPrecondition)
	}
	if s.alloc == nil {
		return nil, fmt.Errorf("userns is enabled but the step has no range allocator: %w", errdefs.ErrFailedPrecondition)
	}
	if c.Pod.Sandbox {
		return s.applySandbox(ctx, c)
	}
	if err := checkNetAdmin(c, c.SandboxPid); err != nil {
		return nil, err
	}
	return nil, s.applyMember(ctx, c)
}

// applySandbox leases the pod's range and gives the sandbox a new user
// namespace with it.
func (s *UserNSStep) applySandbox(ctx context.Context, c *Container) (Undo, error) {
	key, err := idalloc.LeaseKey(c.ContainerdNamespace, c.Pod.SandboxID)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w: %w", podRef(c), err, errdefs.ErrInvalidArgument)
	}
	if err := checkProcessIDs(c.Spec, s.rangeSize()); err != nil {
		return nil, err
	}
	r, err := s.alloc.Allocate(key, s.owner)
	if errors.Is(err, userns.ErrLeaseHeld) {
		return nil, fmt.Errorf("lease an ID range for pod %s: sandbox %s in containerd namespace %s already holds a range "+
			"for a running shim; refusing to share it: %w: %w", podRef(c), c.Pod.SandboxID, c.ContainerdNamespace, err, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return nil, fmt.Errorf("lease an ID range for pod %s: %w", podRef(c), err)
	}
	m := r.Mappings()
	if err := s.remap(ctx, c, specs.LinuxNamespace{Type: specs.UserNamespace}, m, m, true); err != nil {
		if rerr := s.alloc.Release(key); rerr != nil {
			log.G(ctx).WithError(rerr).WithField("pod_sandbox", key).Warn("userns: release range after failed remap")
		}
		return nil, err
	}
	log.G(ctx).WithField("range", r.String()).Info("userns: pod remapped")
	var once sync.Once
	return func(ctx context.Context) error {
		var err error
		once.Do(func() { err = s.Release(ctx, c.ContainerdNamespace, c.Pod.SandboxID) })
		return err
	}, nil
}

// applyMember joins an app container to its sandbox's user namespace.
func (s *UserNSStep) applyMember(ctx context.Context, c *Container) error {
	pid := c.SandboxPid
	key, err := idalloc.LeaseKey(c.ContainerdNamespace, c.Pod.SandboxID)
	if err != nil {
		return fmt.Errorf("pod %s: %w: %w", podRef(c), err, errdefs.ErrInvalidArgument)
	}
	if pid <= 0 {
		return fmt.Errorf("container of pod %s: its sandbox %s is not running in this shim: %w",
			podRef(c), key, errdefs.ErrFailedPrecondition)
	}
	uidMap, gidMap, err := idalloc.ReadProcIDMaps(s.procRoot, pid)
	if err != nil {
		return fmt.Errorf("read user namespace of sandbox %s (pid %d): %w: %w", key, pid, err, errdefs.ErrFailedPrecondition)
	}
	lease, err := s.alloc.Lookup(key)
	switch {
	case errors.Is(err, userns.ErrNotFound) && s.shimsOwnMapping(uidMap):
		// The sandbox was exempted by node policy; its containers share
		// its namespaces, so they cannot be remapped either.
		log.G(ctx).Info("userns: sandbox runs unremapped, so does this container")
		return nil
	case errors.Is(err, userns.ErrNotFound):
		return fmt.Errorf("sandbox %s runs in a user namespace (uid map %s) but holds no lease; refusing to join a range "+
			"that another pod may be given: %w", key, userns.MountOptionValue(uidMap), errdefs.ErrFailedPrecondition)
	case err != nil:
		return fmt.Errorf("look up ID range of pod %s: %w", podRef(c), err)
	}
	if err := checkProcessIDs(c.Spec, lease.Range.Size); err != nil {
		return err
	}
	want := lease.Range.Mappings()
	if !userns.SameMappings(uidMap, want) || !userns.SameMappings(gidMap, want) {
		return fmt.Errorf("sandbox %s (pid %d) runs with uid map %s / gid map %s, but its lease is %s: %w",
			key, pid, userns.MountOptionValue(uidMap), userns.MountOptionValue(gidMap), lease.Range, errdefs.ErrFailedPrecondition)
	}
	// runc 1.5.2 reads the mappings of a joined namespace itself and only
	// warns (future versions: fail) when the spec also carries mappings, so
	// the spec names the path alone.
	join := specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/" + strconv.Itoa(pid) + "/ns/user"}
	return s.remap(ctx, c, join, want, want, false)
}

// shimsOwnMapping reports whether m is the mapping of the user namespace
// the shim runs in (the initial one, unless the node itself is nested), i.e.
// whether a process with it was left unremapped.
func (s *UserNSStep) shimsOwnMapping(m []specs.LinuxIDMapping) bool {
	if userns.IsInitialMapping(m) {
		return true
	}
	own, _, err := idalloc.ReadProcIDMaps(s.procRoot, os.Getpid())
	return err == nil && userns.SameMappings(own, m)
}

// remap edits the spec for a container in the pod's user namespace. Every
// check and side effect happens before the spec is touched, so on error
// the spec is unchanged.
func (s *UserNSStep) remap(ctx context.Context, c *Container, userNS specs.LinuxNamespace, uidMap, gidMap []specs.LinuxIDMapping, withMappings bool) error {
	spec := c.Spec
	mounts := s.idmapMounts(ctx, spec.Mounts, uidMap, gidMap, withMappings)
	sysctls := spec.Linux.Sysctl
	// A network namespace joined by path was made before the container
	// (by CRI for the pod, or it is the sandbox's) and belongs to the host
	// user namespace. Inside the pod's user namespace root has no power
	// over it: sysfs cannot be mounted (EPERM) and net.* sysctls cannot be
	// written (EACCES).
	if netns, ok := namespaceOf(spec, specs.NetworkNamespace); ok && netns.Path != "" {
		mounts = hostSysfs(mounts)
		keep, net, err := splitNetSysctls(spec.Linux.Sysctl, gidMap)
		if err != nil {
			return err
		}
		if len(net) > 0 {
			if err := s.writeNetSysctls(netns.Path, net); err != nil {
				return fmt.Errorf("write net sysctls of pod %s from the host side: %w: %w", podRef(c), err, errdefs.ErrFailedPrecondition)
			}
		}
		sysctls = keep
	}

	setNamespace(spec, userNS)
	if withMappings {
		spec.Linux.UIDMappings = slices.Clone(uidMap)
		spec.Linux.GIDMappings = slices.Clone(gidMap)
	} else {
		spec.Linux.UIDMappings, spec.Linux.GIDMappings = nil, nil
	}
	spec.Mounts = mounts
	spec.Linux.Sysctl = sysctls
	c.Result.UIDMap = slices.Clone(uidMap)
	c.Result.GIDMap = slices.Clone(gidMap)
	return nil
}

// idmapMounts returns a copy of mounts in which every bind-mounted volume
// carries the pod's mapping ("idmap", as containerd's CRI does for the
// kubelet's idmapped volumes): a file owned by 0 on disk appears owned by
// root in the container, and what container uid N writes lands on disk as
// N, so volumes look the same with and without remapping and need no chown.
// Kernel filesystems under /proc, /sys and /dev, mounts that already carry
// a mapping, and filesystems that cannot be idmapped are left alone.
//
// withMappings is false for a container that joins the sandbox's user
// namespace by path, whose mapping (checked against the lease) is the
// pod's: its volumes then carry "idmap" alone, which libcontainer resolves
// to that namespace. With explicit mappings libcontainer would fork a
// process for a new user namespace with them for every container, about
// 1.5 ms of its start, only to get the same mapping.
func (s *UserNSStep) idmapMounts(ctx context.Context, mounts []specs.Mount, uidMap, gidMap []specs.LinuxIDMapping, withMappings bool) []specs.Mount {
	out := slices.Clone(mounts)
	for i := range out {
		m := &out[i]
		if !ocimount.IsBind(*m) || underKernelFS(m.Destination) || len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 ||
			slices.Contains(m.Options, "idmap") || slices.Contains(m.Options, "ridmap") {
			continue
		}
		ok, fs, err := s.idmapSupported(m.Source)
		if err != nil || !ok {
			entry := log.G(ctx).WithFields(log.Fields{"source": m.Source, "destination": m.Destination, "fs": fs})
			if err != nil {
				entry = entry.WithError(err)
			}
			entry.Info("userns: volume mounted without idmap; its files appear as nobody in the container")
			continue
		}
		m.Options = append(slices.Clone(m.Options), "idmap")
		if withMappings {
			m.UIDMappings = slices.Clone(uidMap)
			m.GIDMappings = slices.Clone(gidMap)
		}
	}
	return out
}

// hostSysfs replaces a sysfs mount on /sys by a read-only recursive bind of
// the host's /sys, which is what containerd's CRI does when a user
// namespace meets a network namespace it does not own. nosuid, nodev and
// noexec are locked on the host mount and must be kept or the bind fails.
func hostSysfs(mounts []specs.Mount) []specs.Mount {
	out := slices.Clone(mounts)
	for i, m := range out {
		if m.Type == "sysfs" && path.Clean(m.Destination) == "/sys" {
			out[i] = specs.Mount{
				Destination: "/sys",
				Type:        "bind",
				Source:      "/sys",
				Options:     []string{"rbind", "nosuid", "nodev", "noexec", "rro"},
			}
		}
	}
	return out
}

// splitNetSysctls separates the net.* sysctls (written host-side) from the
// rest (still written by runc inside the container's namespaces). The one
// net sysctl holding IDs, ping_group_range, is given by the pod in
// container GIDs but read by the kernel in the netns owner's (host) GIDs,
// so it is translated through the pod's GID map.
func splitNetSysctls(all map[string]string, gidMap []specs.LinuxIDMapping) (keep, net map[string]string, err error) {
	for k, v := range all {
		if !netns.IsNetSysctl(k) {
			if keep == nil {
				keep = map[string]string{}
			}
			keep[k] = v
			continue
		}
		if k == "net.ipv4.ping_group_range" || k == "net/ipv4/ping_group_range" {
			if v, err = hostGroupRange(v, gidMap); err != nil {
				return nil, nil, fmt.Errorf("sysctl %s: %w", k, err)
			}
		}
		if net == nil {
			net = map[string]string{}
		}
		net[k] = v
	}
	return keep, net, nil
}

// hostGroupRange maps "low high" container GIDs to host GIDs, clamped to
// the mapped part of the range ("1 0", the kernel's "nobody", if none is).
func hostGroupRange(v string, gidMap []specs.LinuxIDMapping) (string, error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return "", fmt.Errorf("value %q: want two GIDs: %w", v, errdefs.ErrInvalidArgument)
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 32)
	hi, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return "", fmt.Errorf("value %q: want two GIDs: %w", v, errdefs.ErrInvalidArgument)
	}
	if hi < lo {
		return "1 0", nil // the kernel's way of saying "no group"
	}
	for _, m := range gidMap {
		last := uint64(m.ContainerID) + uint64(m.Size) - 1
		if m.Size == 0 || hi < uint64(m.ContainerID) || lo > last {
			continue
		}
		lo, hi = max(lo, uint64(m.ContainerID)), min(hi, last)
		hlo, _ := userns.ToHost(gidMap, uint32(lo))
		hhi, _ := userns.ToHost(gidMap, uint32(hi))
		return fmt.Sprintf("%d %d", hlo, hhi), nil
	}
	return "1 0", nil
}

// incompatibility names why a container cannot run in a user namespace,
// or returns "". CRI marks privileged containers with a writable sysfs
// (and drops masked paths and grants all capabilities to app containers);
// host namespaces show as a missing namespace entry.
func incompatibility(spec *specs.Spec) string {
	for _, m := range spec.Mounts {
		if m.Type == "sysfs" && path.Clean(m.Destination) == "/sys" &&
			!slices.Contains(m.Options, "ro") && !slices.Contains(m.Options, "rro") {
			return "privileged (writable /sys)"
		}
	}
	if len(spec.Linux.MaskedPaths) == 0 && spec.Process != nil && spec.Process.Capabilities != nil &&
		slices.Contains(spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		return "privileged (CAP_SYS_ADMIN without masked paths)"
	}
	for _, t := range []struct {
		ns   specs.LinuxNamespaceType
		name string
	}{{specs.NetworkNamespace, "network"}, {specs.PIDNamespace, "PID"}, {specs.IPCNamespace, "IPC"}} {
		if _, ok := namespaceOf(spec, t.ns); !ok {
			return "uses the host " + t.name + " namespace"
		}
	}
	return ""
}

// checkProcessIDs refuses a process user outside the pod's size IDs with a
// clear error, instead of runc's setresuid EINVAL.
func checkProcessIDs(spec *specs.Spec, size uint32) error {
	if spec.Process == nil {
		return nil
	}
	u := spec.Process.User
	ids := append([]uint32{u.UID, u.GID}, u.AdditionalGids...)
	for _, id := range ids {
		if id >= size {
			return fmt.Errorf("container user %d:%d (groups %v): ID %d is outside the %d IDs a remapped pod has: %w",
				u.UID, u.GID, u.AdditionalGids, id, size, errdefs.ErrFailedPrecondition)
		}
	}
	return nil
}

func namespaceOf(spec *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

// setNamespace replaces the entry of ns.Type or adds one.
func setNamespace(spec *specs.Spec, ns specs.LinuxNamespace) {
	for i := range spec.Linux.Namespaces {
		if spec.Linux.Namespaces[i].Type == ns.Type {
			spec.Linux.Namespaces[i] = ns
			return
		}
	}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, ns)
}

func underKernelFS(dst string) bool {
	dst = path.Clean("/" + dst)
	for _, p := range []string{"/proc", "/sys", "/dev"} {
		if dst == p || strings.HasPrefix(dst, p+"/") {
			return true
		}
	}
	return false
}

func podRef(c *Container) string {
	if c.Pod.Kubernetes {
		return c.Pod.Namespace + "/" + c.Pod.Name
	}
	return c.Pod.SandboxID
}
