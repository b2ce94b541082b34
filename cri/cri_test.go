package cri

import "testing"

func TestPodFromAnnotations(t *testing.T) {
	p := PodFromAnnotations("abc", nil)
	if p.Kubernetes || !p.Sandbox || p.SandboxID != "abc" {
		t.Errorf("standalone container: %+v", p)
	}
	p = PodFromAnnotations("c1", map[string]string{
		AnnotationContainerType: ContainerTypeContainer, AnnotationSandboxID: "s1",
		AnnotationSandboxNamespace: "team", AnnotationSandboxName: "web", AnnotationSandboxUID: "u1",
		AnnotationContainerName: "nginx", AnnotationImageName: "nginx:1",
	})
	if !p.Kubernetes || p.Sandbox || p.SandboxID != "s1" || p.Namespace != "team" || p.Name != "web" || p.Container != "nginx" {
		t.Errorf("pod container: %+v", p)
	}
}
