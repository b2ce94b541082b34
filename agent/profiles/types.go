// Package profiles makes recorded seccomp profiles cluster objects: each
// node's agent merges the recordings in its local profile store
// (node/profilestore) into a RecordedSeccompProfile object (group
// stockade.dev, in the workload's namespace) and writes the merged profile
// back into its store, so that a pod held to workload/container gets the
// same profile on every node. Deleting the object removes the profile from
// every node's store.
//
// The shims never talk to the API server: they keep recording into the
// local store as before, and a node without the agent keeps today's local
// behaviour.
package profiles

import (
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/stockade-dev/stockade/profiles/recorded"
)

// The CRD's coordinates (contrib/kubernetes/agent/crd.yaml).
const (
	Group    = "stockade.dev"
	Version  = "v1alpha1"
	Kind     = "RecordedSeccompProfile"
	Resource = "recordedseccompprofiles"
)

// GVR is the resource the agent reads and writes.
var GVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// Object is a RecordedSeccompProfile as stored in the API server. Spec is
// the merged profile of every node's recordings; Status says which nodes
// contributed. Status is not a subresource: one update writes a node's
// contribution and its record in the status together, which is what makes
// a merge idempotent (see NodeStatus.MergedChecksum).
type Object struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec"`
	Status            Status `json:"status,omitempty"`
}

// Spec is a merged recorded profile: the fields of profiles/recorded's
// stored document, less the namespace (the object's) and the checksum
// (the API server's validation and resourceVersion stand in for it).
type Spec struct {
	Workload      string              `json:"workload"`
	Container     string              `json:"container"`
	Images        []recorded.Image    `json:"images,omitempty"`
	Runs          int                 `json:"runs"`
	FirstRecorded metav1.Time         `json:"firstRecorded"`
	LastRecorded  metav1.Time         `json:"lastRecorded"`
	Syscalls      map[string][]string `json:"syscalls"`
}

// Status lists the nodes whose recordings are in the spec.
type Status struct {
	Nodes []NodeStatus `json:"nodes,omitempty"`
}

// NodeStatus is one node's contribution.
type NodeStatus struct {
	Name string `json:"name"`
	// Runs counts the recordings this node merged in.
	Runs int `json:"runs"`
	// LastRecorded is the newest recording of this node merged in.
	LastRecorded metav1.Time `json:"lastRecorded,omitempty"`
	// LastMerged is when the node last merged into the object.
	LastMerged metav1.Time `json:"lastMerged,omitempty"`
	// MergedChecksum is the checksum of the node's local profile that the
	// last merge took. An agent that crashed after merging but before
	// noting it finds its own merge here and does not count it twice.
	MergedChecksum string `json:"mergedChecksum,omitempty"`
}

// ObjectName is the object's name for a profile name: workload.container.
// Both parts are DNS labels or subdomains, so the result is a valid object
// name when it is short enough; Spec holds the parts themselves, and an
// object whose spec names another profile is refused (a collision of two
// dotted names), never merged into.
func ObjectName(n recorded.Name) (string, error) {
	s := n.Workload + "." + n.Container
	if len(s) > 253 {
		return "", fmt.Errorf("recorded profile %s: object name %q is longer than 253 characters", n, s)
	}
	return s, nil
}

// FromUnstructured decodes an object read through the dynamic client.
func FromUnstructured(u *unstructured.Unstructured) (*Object, error) {
	var o Object
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &o); err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", Kind, u.GetNamespace(), u.GetName(), err)
	}
	return &o, nil
}

// ToUnstructured encodes o for the dynamic client.
func (o *Object) ToUnstructured() (*unstructured.Unstructured, error) {
	o.APIVersion = Group + "/" + Version
	o.Kind = Kind
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// ProfileName is the profile name the object holds.
func (o *Object) ProfileName() recorded.Name {
	return recorded.Name{Namespace: o.Namespace, Workload: o.Spec.Workload, Container: o.Spec.Container}
}

// Profile returns the object's profile as the store keeps it, validated
// for goarch: an object that fails (hand-edited, unknown syscalls, a name
// that does not match the object's) is an error, and such an object is
// neither merged into nor written to any node.
func (o *Object) Profile(goarch string) (*recorded.Profile, error) {
	n := o.ProfileName()
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("%s %s/%s: spec: %w", Kind, o.Namespace, o.ObjectMeta.Name, err)
	}
	if want, err := ObjectName(n); err != nil || want != o.ObjectMeta.Name {
		return nil, fmt.Errorf("%s %s/%s: spec names profile %s, whose object would be %q", Kind, o.Namespace, o.ObjectMeta.Name, n, want)
	}
	sys := make(map[specs.Arch][]string, len(o.Spec.Syscalls))
	for a, names := range o.Spec.Syscalls {
		sys[specs.Arch(a)] = names
	}
	p := &recorded.Profile{
		APIVersion: recorded.APIVersion, Kind: recorded.Kind, Name: n,
		Images: o.Spec.Images, Runs: o.Spec.Runs,
		FirstRecorded: o.Spec.FirstRecorded.UTC(), LastRecorded: o.Spec.LastRecorded.UTC(),
		Syscalls: sys,
	}
	// Lists are sorted and deduplicated here, so that a hand-written
	// object in any order is taken; what is left must be a valid profile.
	p = recorded.Normalize(p)
	if err := p.ValidateUnsealed(goarch); err != nil {
		return nil, fmt.Errorf("%s %s/%s: spec: %w", Kind, o.Namespace, o.ObjectMeta.Name, err)
	}
	return p, nil
}

// setProfile writes p into the spec.
func (o *Object) setProfile(p *recorded.Profile) {
	o.Spec.Workload, o.Spec.Container = p.Name.Workload, p.Name.Container
	o.Spec.Images = p.Images
	o.Spec.Runs = p.Runs
	o.Spec.FirstRecorded = metav1.NewTime(p.FirstRecorded)
	o.Spec.LastRecorded = metav1.NewTime(p.LastRecorded)
	o.Spec.Syscalls = make(map[string][]string, len(p.Syscalls))
	for a, names := range p.Syscalls {
		o.Spec.Syscalls[string(a)] = names
	}
}

// node returns the status entry of node, adding it when missing.
func (o *Object) node(name string) *NodeStatus {
	for i := range o.Status.Nodes {
		if o.Status.Nodes[i].Name == name {
			return &o.Status.Nodes[i]
		}
	}
	o.Status.Nodes = append(o.Status.Nodes, NodeStatus{Name: name})
	return &o.Status.Nodes[len(o.Status.Nodes)-1]
}

// mergedChecksum is what node last merged, "" if nothing.
func (o *Object) mergedChecksum(node string) string {
	for _, n := range o.Status.Nodes {
		if n.Name == node {
			return n.MergedChecksum
		}
	}
	return ""
}

func metaTime(t time.Time) metav1.Time { return metav1.NewTime(t.UTC().Truncate(time.Second)) }
