package hooks

import specs "github.com/opencontainers/runtime-spec/specs-go"

// CRI annotations containerd puts on every spec it creates for Kubernetes.
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

// PodFromSpec reads the CRI annotations. containerID is used for containers
// that do not come from CRI.
func PodFromSpec(containerID string, s *specs.Spec) Pod {
	a := s.Annotations
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
