package hooks

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/stockade-dev/stockade/profiles/recorded"
)

// ProfileStore gives the seccomp step the recorded profiles; a
// *profilestore.Store is one.
type ProfileStore interface {
	Load(recorded.Name) (*recorded.Profile, error)
}

// RecordName is the name a container's recording is stored under, and the
// name enforce_recorded looks up: the pod's Kubernetes namespace, its
// workload, the container's name. Outside Kubernetes it is the containerd
// namespace and the container ID (as workload and container).
//
// A Kubernetes pod's stockade.dev/workload may only re-cut the pod's own
// name (ownsWorkload): it used to name any workload of the namespace, so a
// decoy pod could create or widen the profile the real workload is held to.
func RecordName(c *Container) (recorded.Name, error) {
	n := recorded.Name{Namespace: c.ContainerdNamespace, Workload: c.ID, Container: c.ID}
	if c.Pod.Kubernetes {
		n = recorded.Name{Namespace: c.Pod.Namespace, Workload: WorkloadOf(c.Pod.Name), Container: c.Pod.Container}
	}
	if err := checkWorkloadAnnotation(c); err != nil {
		return recorded.Name{}, err
	}
	if c.Annotations.Workload != "" {
		n.Workload = c.Annotations.Workload
	}
	if err := n.Validate(); err != nil {
		return recorded.Name{}, fmt.Errorf("record mode: %w (set %s to name the workload)", err, AnnotationWorkload)
	}
	return n, nil
}

// checkWorkloadAnnotation refuses a stockade.dev/workload that a Kubernetes
// pod may not use: one that is neither its own name nor a prefix of it
// ending before a '-'. What CRI hands the runtime about a pod (name,
// namespace, UID, annotations, labels) is all chosen by whoever creates the
// pod; owner references never reach it. So within a namespace a workload
// name cannot be bound to the pod's real controller, only to its name,
// which the annotation can then cut where the controller-suffix heuristic
// (WorkloadOf) guesses wrong, and no further: it gives a pod no name it
// could not get by being named so. Outside Kubernetes whoever creates
// containers holds the containerd socket, so any name is accepted.
func checkWorkloadAnnotation(c *Container) error {
	w := c.Annotations.Workload
	if w == "" || !c.Pod.Kubernetes || ownsWorkload(c.Pod.Name, w) {
		return nil
	}
	return fmt.Errorf("annotation %s: workload %q is neither the pod's name %q nor a prefix of it ending before a '-'; "+
		"a pod may only name its own workload: %w", AnnotationWorkload, w, c.Pod.Name, errdefs.ErrInvalidArgument)
}

// ownsWorkload reports whether pod may record under workload w.
func ownsWorkload(pod, w string) bool {
	return pod == w || strings.HasPrefix(pod, w+"-")
}

// requestedProfile resolves stockade.dev/seccomp-profile: "workload/
// container" is in the pod's namespace; a namespace, if given, must be the
// pod's own, so that names mean the same to everyone reading them.
func requestedProfile(c *Container) (recorded.Name, error) {
	ns := c.ContainerdNamespace
	if c.Pod.Kubernetes {
		ns = c.Pod.Namespace
	}
	parts := strings.Split(c.Annotations.SeccompProfile, "/")
	if len(parts) == 2 {
		parts = append([]string{ns}, parts...)
	}
	n := recorded.Name{Namespace: parts[0], Workload: parts[1], Container: parts[2]}
	if c.Pod.Kubernetes && n.Namespace != c.Pod.Namespace {
		return recorded.Name{}, fmt.Errorf("annotation %s: profile %s belongs to namespace %s, not the pod's (%s): %w",
			AnnotationSeccompProfile, n, n.Namespace, c.Pod.Namespace, errdefs.ErrInvalidArgument)
	}
	if err := n.Validate(); err != nil {
		return recorded.Name{}, fmt.Errorf("annotation %s: %w", AnnotationSeccompProfile, err)
	}
	return n, nil
}

// generatedSuffix is the alphabet of the random suffixes Kubernetes
// controllers append to the names they generate (no vowels, no 0, 1, 3).
const generatedSuffix = "bcdfghjklmnpqrstvwxz2456789"

// WorkloadOf derives the workload from a pod name the way its controller
// built it, so that replicas share one recorded profile:
//
//	web-7c9d8f6b5-x2k4p  → web   (Deployment: ReplicaSet hash, random suffix)
//	agent-q7w2z          → agent (DaemonSet, ReplicaSet, Job)
//	backup-28391234-kq2vd → backup (CronJob: schedule time, random suffix)
//	db-2                 → db    (StatefulSet ordinal)
//	debug                → debug (a bare pod)
//
// It is a heuristic on names only; stockade.dev/workload overrides it.
func WorkloadOf(pod string) string {
	parts := strings.Split(pod, "-")
	last := func() string { return parts[len(parts)-1] }
	switch {
	case len(parts) >= 2 && isGenerated(last(), 5, 5):
		parts = parts[:len(parts)-1]
		if len(parts) >= 2 && (isGenerated(last(), 6, 10) || isDigits(last())) {
			parts = parts[:len(parts)-1]
		}
	case len(parts) >= 2 && isDigits(last()):
		parts = parts[:len(parts)-1]
	}
	return strings.Join(parts, "-")
}

func isGenerated(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune(generatedSuffix, r) {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
