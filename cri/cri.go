// Package cri is what containerd's CRI plugin tells a runtime about a
// container: the annotations it puts on every spec it creates for
// Kubernetes, and the pod identity read from them. It is a leaf: the hooks,
// the shim, the denial agent and the CLI all read pods through it, so they
// can never disagree about who a container is.
package cri

// Annotations containerd's CRI plugin sets on every spec it creates.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationImageName        = "io.kubernetes.cri.image-name"

	ContainerTypeSandbox   = "sandbox"
	ContainerTypeContainer = "container"
)

// SandboxContainerName names a pod's sandbox (pause) container, which has no
// name of its own in CRI, as the kubelet and crictl show it. Kubernetes
// container names are lowercase DNS labels, so it cannot collide.
const SandboxContainerName = "POD"

// Pod is the Kubernetes identity of a container. For containers created
// outside Kubernetes (plain containerd clients) Kubernetes is false and the
// container stands alone: it is its own "pod" with SandboxID == its ID.
type Pod struct {
	Kubernetes bool
	// Sandbox is true for the pod's sandbox (pause) container.
	Sandbox   bool
	SandboxID string
	Namespace string
	Name      string
	UID       string
	// Container is the container's name in the pod ("" for the sandbox).
	Container string
	Image     string
}

// PodFromAnnotations reads the CRI annotations of a spec. containerID stands
// in for what containers that do not come from CRI lack.
func PodFromAnnotations(containerID string, a map[string]string) Pod {
	typ, ok := a[AnnotationContainerType]
	if !ok {
		return Pod{SandboxID: containerID, Sandbox: true, Name: containerID, Container: containerID}
	}
	p := Pod{
		Kubernetes: true,
		Sandbox:    typ == ContainerTypeSandbox,
		SandboxID:  a[AnnotationSandboxID],
		Namespace:  a[AnnotationSandboxNamespace],
		Name:       a[AnnotationSandboxName],
		UID:        a[AnnotationSandboxUID],
		Container:  a[AnnotationContainerName],
		Image:      a[AnnotationImageName],
	}
	if p.SandboxID == "" {
		p.SandboxID = containerID
	}
	return p
}
