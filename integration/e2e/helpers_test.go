package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// The RuntimeClasses every side-by-side test runs under: stockade, and runc
// as the baseline whose behaviour stockade must match.
var classes = []string{"stockade", "runc"}

// Image is the busybox test image; `latest` would make the kubelet pull, so
// every manifest says imagePullPolicy: Never.
const Image = harness.BusyboxImage

// waitTimeout bounds each wait on the cluster; generous because the tier
// shares two cores with everything else on the machine.
const waitTimeout = "120s"

// K is one test's view of the cluster: its own namespace and RuntimeClass.
type K struct {
	t     *testing.T
	c     *Cluster
	NS    string
	Class string
}

// eachClass runs fn once per RuntimeClass, in parallel subtests, each in a
// fresh namespace.
func eachClass(t *testing.T, fn func(t *testing.T, k *K)) {
	c := get(t)
	t.Parallel()
	for _, class := range classes {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			fn(t, newK(t, c, class))
		})
	}
}

// only runs fn under one RuntimeClass (for stockade's own promises).
func only(t *testing.T, class string, fn func(t *testing.T, k *K)) {
	c := get(t)
	t.Parallel()
	fn(t, newK(t, c, class))
}

var nsUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

func newK(t *testing.T, c *Cluster, class string) *K {
	name := nsUnsafe.ReplaceAllString(strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), "-")
	name = strings.Trim(name, "-")
	if len(name) > 50 {
		name = name[:50]
	}
	ns := strings.Trim(fmt.Sprintf("e2e-%s", name), "-")
	k := &K{t: t, c: c, NS: ns, Class: class}
	if _, err := c.kubectl(context.Background(), "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	// The default ServiceAccount is created asynchronously, and pods are
	// refused until it exists.
	k.eventually("default ServiceAccount", func() error {
		_, err := k.kubectl("get", "serviceaccount", "default")
		return err
	})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := k.kubectl("describe", "pods")
			t.Logf("kubectl describe pods -n %s:\n%s", ns, out)
			ev, _ := k.kubectl("get", "events", "--sort-by=.lastTimestamp")
			t.Logf("events in %s:\n%s", ns, ev)
		}
		// Pods are deleted in the background; teardown takes what is left.
		_, _ = c.kubectl(context.Background(), "delete", "namespace", ns, "--wait=false")
	})
	return k
}

// kubectl runs kubectl in k's namespace.
func (k *K) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return k.c.kubectl(ctx, append([]string{"-n", k.NS}, args...)...)
}

// must runs kubectl in k's namespace and fails the test on error.
func (k *K) must(args ...string) string {
	k.t.Helper()
	out, err := k.kubectl(args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// cmd builds a kubectl command in k's namespace, for tests that need its
// streams.
func (k *K) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(k.c.K8sBin, "kubectl"),
		append(append(k.c.KubectlFlags(), "-n", k.NS), args...)...)
}

// apply creates the objects of a manifest after expanding NAME-free
// placeholders: {{CLASS}} and {{IMAGE}}.
func (k *K) apply(manifest string) {
	k.t.Helper()
	manifest = strings.NewReplacer("{{CLASS}}", k.Class, "{{IMAGE}}", Image).Replace(manifest)
	f := filepath.Join(k.t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		k.t.Fatal(err)
	}
	k.must("apply", "-f", f)
}

// pod creates a pod with one busybox container running script under sh,
// with extra YAML merged into the container (indented 4) and the pod spec
// (indented 2).
func (k *K) pod(name, script, containerExtra, specExtra string) {
	k.t.Helper()
	k.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  runtimeClassName: {{CLASS}}
  terminationGracePeriodSeconds: 2
  automountServiceAccountToken: false
%s
  containers:
  - name: main
    image: {{IMAGE}}
    imagePullPolicy: Never
    command: ["sh", "-c", %q]
%s
`, name, indent(specExtra, 2), script, indent(containerExtra, 4)))
}

func indent(s string, n int) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for a pod's Ready condition.
func (k *K) waitReady(pod string) {
	k.t.Helper()
	k.must("wait", "--for=condition=Ready", "pod/"+pod, "--timeout="+waitTimeout)
}

// waitPhase waits for a pod to reach phase (Succeeded, Failed, Running).
func (k *K) waitPhase(pod, phase string) {
	k.t.Helper()
	k.must("wait", "--for=jsonpath={.status.phase}="+phase, "pod/"+pod, "--timeout="+waitTimeout)
}

// jsonpath reads one field of an object.
func (k *K) jsonpath(obj, path string) string {
	k.t.Helper()
	return strings.TrimSpace(k.must("get", obj, "-o", "jsonpath="+path))
}

// exec runs a command in a pod's container and returns stdout; the error
// carries stderr and the exit status.
func (k *K) exec(pod string, argv ...string) (string, error) {
	return k.kubectl(append([]string{"exec", pod, "--"}, argv...)...)
}

// mustExec is exec that fails the test on error.
func (k *K) mustExec(pod string, argv ...string) string {
	k.t.Helper()
	out, err := k.exec(pod, argv...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// eventually retries fn until it returns nil or two minutes passed.
func (k *K) eventually(what string, fn func() error) {
	k.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("%s: still failing after 2m: %v", what, err)
		}
		if herr := k.c.Healthy(); herr != nil {
			k.t.Fatalf("%s: cluster broke: %v", what, herr)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
