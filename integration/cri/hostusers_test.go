package cri

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

// hostUsersFalse gives a pod what the kubelet sends for hostUsers: false: a
// pod-wide user namespace with one 65536-ID range from the kubelet's own
// allocation (multiples of 65536 above 65535; far below stockade's pool).
func hostUsersFalse(cfg *runtimeapi.PodSandboxConfig) *runtimeapi.UserNamespace {
	host := uint32(65536 * (100 + rand.IntN(900)))
	m := []*runtimeapi.IDMapping{{HostId: host, ContainerId: 0, Length: 65536}}
	u := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
	return u
}

// A hostUsers: false pod runs on the handler as it is registered by contrib/
// (no runtime options block): containerd's client then sends
// containerd.runc.v1.Options, which the shim must take. The pod keeps the
// kubelet's range, and a container that adds CAP_NET_ADMIN can use it,
// because containerd created the network namespace inside that range's user
// namespace.
func TestHostUsersFalseWithNetAdmin(t *testing.T) {
	env := harness.Get(t)
	cfg := podConfig(env, uniqueName(t, ""), nil)
	u := hostUsersFalse(cfg)
	p, err := runPod(t, env, cfg)
	if err != nil {
		t.Fatalf("hostUsers: false pod: %v", err)
	}
	id := p.startWith("netadmin", func(c *runtimeapi.ContainerConfig) {
		sc := c.Linux.SecurityContext
		sc.NamespaceOptions.UsernsOptions = u
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}}
	}, "sleep", "3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)

	uidMap := strings.Fields(p.mustExec(id, "cat", "/proc/self/uid_map"))
	if len(uidMap) != 3 || uidMap[0] != "0" || uidMap[1] != strconv.FormatUint(uint64(u.Uids[0].HostId), 10) || uidMap[2] != "65536" {
		t.Errorf("uid_map %v, want the kubelet's range 0 %d 65536", uidMap, u.Uids[0].HostId)
	}
	out := p.mustExec(id, "sh", "-c", "brctl addbr stk0 && ip link show stk0 && brctl delbr stk0 && echo netadmin-ok")
	if !strings.Contains(out, "netadmin-ok") {
		t.Errorf("NET_ADMIN in a hostUsers: false pod: %q", out)
	}
}

// In a pod stockade remaps itself, containerd made the network namespace
// before the pod's user namespace existed, so CAP_NET_ADMIN could never
// work: the container is refused at creation, with the ways out named.
func TestNetAdminInRemappedPodRefused(t *testing.T) {
	env := harness.Get(t)
	stockadeOnly(t, env)
	p := mustRunPod(t, env, uniqueName(t, ""))
	// CRI makes the task, where the shim decides, at StartContainer.
	id, err := p.createWith("netadmin", func(c *runtimeapi.ContainerConfig) {
		c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}}
	}, "sleep", "3600")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithTimeout()
	defer cancel()
	_, err = p.rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
	if err == nil {
		t.Fatal("a NET_ADMIN container started in a remapped pod, where the capability cannot work")
	}
	for _, want := range []string{"CAP_NET_ADMIN", "hostUsers: false", "userns.enabled = false"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The pod's other containers are unaffected.
	id = p.start("plain", "sleep", "3600")
	p.waitState(id, runtimeapi.ContainerState_CONTAINER_RUNNING, 30*time.Second)
}
