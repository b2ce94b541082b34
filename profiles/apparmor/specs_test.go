package apparmor

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Specs shaped like the ones containerd's CRI plugin writes, for goldens
// and semantics tests.

// criDefaultCaps is containerd's default capability set.
var criDefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func allCaps() []string {
	out := make([]string, len(capNames))
	for i, n := range capNames {
		out[i] = "CAP_" + strings.ToUpper(n)
	}
	return out
}

func bind(dest string, ro bool) specs.Mount {
	opt := "rw"
	if ro {
		opt = "ro"
	}
	return specs.Mount{Destination: dest, Type: "bind", Source: "/var/lib/kubelet/x" + dest, Options: []string{"rbind", "rprivate", opt}}
}

// criSpec is a Kubernetes container as containerd's CRI plugin specifies it.
func criSpec(readonlyRoot bool, caps []string, extra ...specs.Mount) *specs.Spec {
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs", Readonly: readonlyRoot},
		Process: &specs.Process{
			Args: []string{"/app"},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			bind("/etc/hosts", false),
			bind("/dev/termination-log", false),
			bind("/etc/hostname", false),
			bind("/etc/resolv.conf", false),
			bind("/dev/shm", false),
			bind("/var/run/secrets/kubernetes.io/serviceaccount", true),
		},
		Linux: &specs.Linux{
			MaskedPaths:   []string{"/proc/acpi", "/proc/kcore", "/proc/keys", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	s.Mounts = append(s.Mounts, extra...)
	return s
}

// goldenCases are the representative profiles kept under testdata/.
var goldenCases = []struct {
	name   string
	spec   func() *specs.Spec
	policy Policy
}{
	{
		name:   "cri-default",
		spec:   func() *specs.Spec { return criSpec(false, criDefaultCaps) },
		policy: Policy{Mode: Enforce, ABI: "abi/3.0"},
	},
	{
		// readOnlyRootFilesystem with an emptyDir, a rw hostPath, a
		// ConfigMap, and a read-only mount nested in a writable one.
		name: "readonly-root-volumes",
		spec: func() *specs.Spec {
			return criSpec(true, criDefaultCaps,
				bind("/cache", false),
				bind("/var/lib/app/data", false),
				bind("/etc/app/config", true),
				bind("/var/lib/app/data/seed", true),
			)
		},
		policy: Policy{Mode: Enforce, ABI: "abi/3.0"},
	},
	{
		// Every capability and a writable /sys, as a privileged pod gets.
		name: "privileged-caps",
		spec: func() *specs.Spec {
			s := criSpec(false, allCaps())
			for i := range s.Mounts {
				if s.Mounts[i].Destination == "/sys" || s.Mounts[i].Destination == "/sys/fs/cgroup" {
					s.Mounts[i].Options = []string{"nosuid", "noexec", "nodev", "rw"}
				}
			}
			return s
		},
		policy: Policy{Mode: Enforce, ABI: "abi/3.0"},
	},
	{
		// Complain mode, no ABI pin (an AppArmor 2.x parser), and a
		// confined shim that must be able to signal the container.
		name:   "complain",
		spec:   func() *specs.Spec { return criSpec(false, criDefaultCaps, bind("/data", false)) },
		policy: Policy{Mode: Complain, RuntimeLabel: "containerd-shim-stockade"},
	},
	{
		// Destinations that would break the syntax or act as globs if
		// they were not escaped.
		name: "hostile-destinations",
		spec: func() *specs.Spec {
			return criSpec(true, nil,
				bind(`/data/*`, false),
				bind(`/data/{a,b}`, false),
				bind(`/x" rwx, /** rwx, "`, false),
				bind("/line\n/** rwx,\n", false),
				bind("/@{HOME}/^hat[0-9]?", false),
				bind("/trailing space ", false),
				bind(`/back\slash`, true),
			)
		},
		policy: Policy{Mode: Enforce, ABI: "abi/3.0"},
	},
}
