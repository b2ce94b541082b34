package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// A Deployment of three replicas becomes Available, and a rollout replaces
// every pod with one of the new template.
func TestDeployment(t *testing.T) {
	eachClass(t, func(t *testing.T, k *K) {
		deploy := func(version string) {
			k.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxUnavailable: 1, maxSurge: 1}
  template:
    metadata:
      labels: {app: web}
    spec:
      runtimeClassName: {{CLASS}}
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      containers:
      - name: web
        image: {{IMAGE}}
        imagePullPolicy: Never
        env: [{name: VERSION, value: %q}]
        command: ["sh", "-c", "echo $VERSION > /tmp/version; exec sleep 3600"]
        readinessProbe:
          exec: {command: ["cat", "/tmp/version"]}
          periodSeconds: 1
`, version))
			k.must("rollout", "status", "deployment/web", "--timeout="+waitTimeout)
		}
		deploy("v1")
		if got := k.jsonpath("deployment/web", `{.status.conditions[?(@.type=="Available")].status}`); got != "True" {
			t.Fatalf("deployment not Available: %q", got)
		}
		if got := k.jsonpath("deployment/web", "{.status.readyReplicas}"); got != "3" {
			t.Fatalf("readyReplicas = %q, want 3", got)
		}
		old := strings.Fields(k.must("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))

		deploy("v2")
		// Pods of the old ReplicaSet may still be terminating: look only at
		// the ones that run the new template.
		pods := strings.Fields(k.must("get", "pods", "-l", "app=web", "--field-selector=status.phase=Running",
			"-o", "jsonpath={.items[*].metadata.name}"))
		v2 := 0
		for _, p := range pods {
			out, err := k.exec(p, "cat", "/tmp/version")
			if err != nil {
				continue // terminating
			}
			if strings.TrimSpace(out) == "v2" {
				v2++
			}
			for _, o := range old {
				if o == p && strings.TrimSpace(out) == "v2" {
					t.Errorf("pod %s of the old ReplicaSet reports v2", p)
				}
			}
		}
		if v2 != 3 {
			t.Fatalf("%d pods run v2 after the rollout, want 3 (pods %v)", v2, pods)
		}
	})
}
