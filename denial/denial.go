// Package denial is the contract of stockade's denial stream, shared by the
// hooks that wire a container to it, the agent in the shim that answers and
// records, and the CLI that reads the records: who a container is
// (Attribution), the modes a container runs in, and the metadata the hooks
// hand the agent through libcontainer. It is a leaf, so the hooks never
// import the shim.
package denial

import (
	"strings"
	"syscall"

	"github.com/stockade-dev/stockade/cri"
)

// Modes a container is registered with. They decide how a notified syscall is
// answered: enforce fails it with EPERM, complain lets it run.
const (
	ModeEnforce  = "enforce"
	ModeComplain = "complain"
)

// Attribution is who a container is, as the shim knows it when the container
// is created. It is copied into every record so a record is self-contained:
// readers never need the shim (which may be gone) to interpret it.
type Attribution struct {
	// Namespace is the Kubernetes namespace, or the containerd namespace for
	// containers that do not come from Kubernetes.
	Namespace string
	// Pod is the pod name, or the container ID for standalone containers.
	Pod string
	// PodUID is the pod UID, or the container ID for standalone containers.
	PodUID string
	// Container is the container's name in its pod.
	Container string
	// Image is the image reference the container was created from.
	Image string
}

// For names a container for its records: its Kubernetes identity, or, for
// containers created by plain containerd clients, the containerd namespace
// and the container ID. A sandbox is named as the kubelet names it ("POD");
// a field CRI left empty falls back to the container ID, and a missing
// namespace to "default", so every record can be filed.
func For(pod cri.Pod, containerdNS, containerID string) Attribution {
	if !pod.Kubernetes {
		if containerdNS == "" {
			containerdNS = "default"
		}
		return Attribution{Namespace: containerdNS, Pod: containerID, PodUID: containerID, Container: containerID}
	}
	a := Attribution{Namespace: pod.Namespace, Pod: pod.Name, PodUID: pod.UID, Container: pod.Container, Image: pod.Image}
	if a.Container == "" && pod.Sandbox {
		a.Container = cri.SandboxContainerName
	}
	for _, f := range []*string{&a.Pod, &a.PodUID, &a.Container} {
		if *f == "" {
			*f = containerID
		}
	}
	if a.Namespace == "" {
		a.Namespace = "default"
	}
	return a
}

// Verdict answers a notified syscall with what the rule that notified it
// did before the hooks rewrote it to SCMP_ACT_NOTIFY: errno != 0 fails the
// syscall with it (ERRNO rules), errno == 0 lets it run (LOG rules). ok is
// false when no rewritten rule matches; the agent then fails the syscall
// with EPERM, the safe reading of a deny rule it cannot identify.
type Verdict func(name string, args [6]uint64) (errno syscall.Errno, ok bool)

// metadataPrefix starts the ListenerMetadata the hooks set. It lets the
// agent answer correctly even for a container it was never told about.
const metadataPrefix = "stockade/v1"

// ListenerMetadata is the spec.Linux.Seccomp.ListenerMetadata value for a
// container: libcontainer passes it back with every notify fd.
func ListenerMetadata(mode, profile string) string {
	return metadataPrefix + " mode=" + mode + " profile=" + profile
}

// ParseListenerMetadata recovers mode and profile; anything unexpected means
// enforce, which fails the syscall exactly as the unrewritten profile would
// have.
func ParseListenerMetadata(md string) (mode, profile string) {
	mode = ModeEnforce
	f := strings.Fields(md)
	if len(f) == 0 || f[0] != metadataPrefix {
		return mode, ""
	}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "mode":
			if v == ModeComplain {
				mode = ModeComplain
			}
		case "profile":
			profile = v
		}
	}
	return mode, profile
}
