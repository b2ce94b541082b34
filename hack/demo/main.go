// Command demo shows what isolation a pod gets from stockade: it starts a
// private containerd (integration/harness), runs a busybox pod through CRI
// on the "stockade" runtime handler as the kubelet would, reads the
// container's seccomp, user-namespace, AppArmor, capability and
// no_new_privs state from the host's /proc, makes the container try a
// syscall the profile denies, prints the denial record(s) from the sink,
// and tears everything down.
//
//	make demo    # = make deps build images && go run -tags seccomp ./hack/demo
//
// It needs root, like the integration tests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/stockade-dev/stockade/integration/harness"
)

const (
	podName       = "demo"
	podNamespace  = "default"
	podUID        = "5f0c3a52-7d8e-4c1b-9a4e-1d2c3b4a5f60"
	containerName = "app"
)

// deniedCommand is what the container tries: a new user namespace, which
// the generated profile denies to a container without CAP_SYS_ADMIN.
var deniedCommand = []string{"unshare", "-U", "true"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) (retErr error) {
	binDir, err := harness.FindBinDir()
	if err != nil {
		return err
	}
	if err := harness.Available(harness.HandlerStockade, binDir); err != nil {
		return err
	}
	fmt.Println("starting a private containerd with the stockade runtime handler ...")
	env, err := harness.Start(ctx, harness.Options{Handler: harness.HandlerStockade, BinDir: binDir})
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	defer func() {
		fmt.Println("\ntearing down ...")
		if err := env.Close(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("teardown: %w", err))
		}
	}()
	conn, err := env.DialCRI()
	if err != nil {
		return err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)

	pod, ctr, pid, err := startPod(ctx, env, rs)
	defer func() {
		if pod == "" {
			return
		}
		// The kubelet's order: stop, then remove.
		ctx := context.WithoutCancel(ctx)
		_, err1 := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod})
		_, err2 := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
		retErr = errors.Join(retErr, err1, err2)
	}()
	if err != nil {
		return err
	}

	fmt.Printf("\npod %s/%s, container %q (busybox), host pid %d\n\n", podNamespace, podName, containerName, pid)
	if err := printIsolation(pid); err != nil {
		return err
	}
	return triggerDenial(ctx, env, rs, ctr)
}

// startPod runs the pod and its container and returns the sandbox ID (set
// whenever there is a sandbox to remove), the container ID and the
// container's host pid.
func startPod(ctx context.Context, env *harness.Env, rs runtimeapi.RuntimeServiceClient) (pod, ctr string, pid int, err error) {
	logDir := filepath.Join(env.PodLogDir(), podNamespace+"_"+podName+"_"+podUID)
	if err := os.MkdirAll(filepath.Join(logDir, containerName), 0o755); err != nil {
		return "", "", 0, err
	}
	runtimeDefault := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: podName, Namespace: podNamespace, Uid: podUID},
		Hostname:     podName,
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: nsOpts, Seccomp: runtimeDefault,
		}},
	}
	sb, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: harness.HandlerStockade})
	if err != nil {
		return "", "", 0, fmt.Errorf("run pod sandbox: %w", err)
	}
	c, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  sb.PodSandboxId,
		SandboxConfig: podCfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: containerName},
			Image:    &runtimeapi.ImageSpec{Image: harness.BusyboxImage},
			Command:  []string{"sleep", "3600"},
			LogPath:  filepath.Join(containerName, "0.log"),
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: nsOpts, Seccomp: runtimeDefault,
			}},
		},
	})
	if err == nil {
		_, err = rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId})
	}
	if err != nil {
		return sb.PodSandboxId, "", 0, fmt.Errorf("start container: %w", err)
	}
	st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.ContainerId, Verbose: true})
	if err != nil {
		return sb.PodSandboxId, "", 0, fmt.Errorf("container status: %w", err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
		return sb.PodSandboxId, "", 0, fmt.Errorf("container pid from CRI's verbose status: %v", err)
	}
	return sb.PodSandboxId, c.ContainerId, info.Pid, nil
}

// printIsolation reads the container's state from the host's /proc, which
// is what the kernel enforces, whatever any config file says.
func printIsolation(pid int) error {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	field := func(key string) string {
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, key+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	row := func(name, value string) { fmt.Printf("  %-15s %s\n", name, value) }
	fmt.Println("isolation, as the host kernel sees the container's process:")

	seccomp := map[string]string{"0": "off", "1": "strict", "2": "filter"}[field("Seccomp")]
	if n := field("Seccomp_filters"); n != "" {
		seccomp += fmt.Sprintf(" (%s filter(s) attached)", n)
	}
	row("seccomp", seccomp)

	uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
	row("user namespace", describeIDMap(string(uidMap)))

	row("apparmor", appArmor(pid))

	capEff := field("CapEff")
	row("capabilities", fmt.Sprintf("%s = %s", capEff, capNames(capEff)))
	nnp := field("NoNewPrivs")
	row("no_new_privs", map[string]string{"0": "0 (setuid binaries could gain privileges)", "1": "1 (execve cannot gain privileges)"}[nnp])
	return nil
}

// describeIDMap turns uid_map into a sentence.
func describeIDMap(m string) string {
	f := strings.Fields(m)
	if len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295" {
		return "none: container root is host root (uid_map 0 0 4294967295)"
	}
	if len(f) == 3 {
		in, err1 := strconv.ParseUint(f[0], 10, 64)
		out, err2 := strconv.ParseUint(f[1], 10, 64)
		n, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && n > 0 {
			return fmt.Sprintf("container uid %d-%d = host uid %d-%d (container root is unprivileged on the host)",
				in, in+n-1, out, out+n-1)
		}
	}
	return "uid_map " + strings.Join(f, " ")
}

func appArmor(pid int) string {
	if _, err := os.Stat("/sys/module/apparmor/parameters/enabled"); err != nil {
		return "not available on this kernel"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/attr/apparmor/current", pid))
	if err != nil {
		b, err = os.ReadFile(fmt.Sprintf("/proc/%d/attr/current", pid))
	}
	if err != nil {
		return "unreadable: " + err.Error()
	}
	return strings.TrimSpace(string(b))
}

// capNames lists the capabilities in a CapEff mask (linux/capability.h).
func capNames(hexMask string) string {
	names := []string{"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
		"setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
		"ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
		"sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease",
		"audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
		"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore"}
	mask, err := strconv.ParseUint(hexMask, 16, 64)
	if err != nil {
		return "?"
	}
	var out []string
	for i := range 64 {
		if mask&(1<<i) == 0 {
			continue
		}
		if i < len(names) {
			out = append(out, names[i])
		} else {
			out = append(out, "cap_"+strconv.Itoa(i))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}
