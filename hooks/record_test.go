//go:build cgo && seccomp

package hooks

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

func TestWorkloadOf(t *testing.T) {
	for pod, want := range map[string]string{
		"web-7c9d8f6b5-x2k4p":    "web", // Deployment
		"my-api-5d8b9c7f4-q7w2z": "my-api",
		"agent-q7w2z":            "agent",  // DaemonSet, Job
		"backup-28391234-kq2vd":  "backup", // CronJob
		"db-2":                   "db",     // StatefulSet
		"debug":                  "debug",
		"busybox-abcde":          "busybox-abcde", // vowels: not a generated suffix
		"web-x2k4":               "web-x2k4",      // too short
		"2":                      "2",
	} {
		if got := WorkloadOf(pod); got != want {
			t.Errorf("WorkloadOf(%q) = %q, want %q", pod, got, want)
		}
	}
}

// recordStore writes a recorded profile for prod/web/app allowing what
// runc needs (added by OCI) plus mkdir.
func recordStore(t *testing.T) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	node := config.Default()
	node.Record.StoreDir = dir
	store, err := profilestore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := recorded.New(recorded.Name{Namespace: "prod", Workload: "web", Container: "app"}, recorded.Image{Name: "web:1"}, time.Now(),
		map[specs.Arch][]string{specs.ArchX86_64: {"mkdir", "brk", "arch_prctl"}})
	if _, err := store.Save(p); err != nil {
		t.Fatal(err)
	}
	return node, dir
}

func storeFor(c *config.Config) (ProfileStore, error) { return profilestore.Open(c.Record.StoreDir) }

func TestSeccompStepRecorded(t *testing.T) {
	node, dir := recordStore(t)
	apply := func(c *Container) error {
		_, err := (&SeccompStep{GOARCH: "amd64", Store: storeFor}).Apply(context.Background(), c)
		return err
	}
	kube := func(name string, ann Annotations) *Container {
		c := seccompContainer("prod", true, nil)
		c.Pod.Name, c.Annotations, c.Node = name, ann, node
		return c
	}

	// Named by annotation: enforced, a call outside the recording denied.
	c := kube("other", Annotations{SeccompProfile: "web/app"})
	if err := apply(c); err != nil {
		t.Fatal(err)
	}
	if c.Result.SeccompProfile != "recorded:prod/web/app" {
		t.Errorf("profile %q", c.Result.SeccompProfile)
	}
	if act, _ := seccomp.Evaluate(c.Spec.Linux.Seccomp, "mkdir", [6]uint64{}); act != specs.ActAllow {
		t.Errorf("recorded mkdir: %s", act)
	}
	if act, _ := seccomp.Evaluate(c.Spec.Linux.Seccomp, "rmdir", [6]uint64{}); act == specs.ActAllow {
		t.Error("rmdir allowed, but never recorded")
	}

	// enforce_recorded: the container's own profile, found by workload.
	auto := *node
	auto.Record.EnforceRecorded = true
	c = kube("web-7c9d8f6b5-x2k4p", Annotations{})
	c.Node = &auto
	if err := apply(c); err != nil || c.Result.SeccompProfile != "recorded:prod/web/app" {
		t.Errorf("enforce_recorded: %q, %v", c.Result.SeccompProfile, err)
	}
	// ... and nothing recorded for it: the baseline.
	c = kube("api-x2k4p", Annotations{})
	c.Node = &auto
	if err := apply(c); err != nil || c.Result.SeccompProfile != SeccompBaseline {
		t.Errorf("enforce_recorded without a profile: %q, %v", c.Result.SeccompProfile, err)
	}
	// The sandbox is never held to a workload's profile.
	c = kube("web-7c9d8f6b5-x2k4p", Annotations{SeccompProfile: "web/app"})
	c.Pod.Sandbox = true
	if err := apply(c); err != nil || c.Result.SeccompProfile != SeccompBaseline {
		t.Errorf("sandbox: %q, %v", c.Result.SeccompProfile, err)
	}

	// Record mode: allowed by the node, runs under the node's mode.
	rec := *node
	rec.Record.Allow = true
	c = kube("web-7c9d8f6b5-x2k4p", Annotations{SeccompMode: SeccompModeRecord})
	c.Node = &rec
	if err := apply(c); err != nil || c.Result.Record != "prod/web/app" || c.Result.SeccompMode != "enforce" {
		t.Errorf("record: %+v, %v", c.Result, err)
	}
	// The annotation re-cuts the pod's own name where the heuristic is
	// wrong ("web-canary-7c9d8f6b5-x2k4p" derives "web-canary" already;
	// "web" is a cut of it too).
	for ann, want := range map[string]string{"web-canary": "prod/web-canary/app", "web": "prod/web/app", "web-canary-7c9d8f6b5-x2k4p": "prod/web-canary-7c9d8f6b5-x2k4p/app"} {
		c = kube("web-canary-7c9d8f6b5-x2k4p", Annotations{SeccompMode: SeccompModeRecord, Workload: ann})
		c.Node = &rec
		if err := apply(c); err != nil || c.Result.Record != want {
			t.Errorf("record with workload annotation %q: %+v, %v", ann, c.Result, err)
		}
	}

	// Bad input: each fails the container, names the cause, and leaves the
	// spec as it was.
	if err := os.WriteFile(filepath.Join(dir, "prod", "web", "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    *Container
		kind func(error) bool
		want string
	}{
		{kube("x", Annotations{SeccompMode: SeccompModeRecord}), errdefs.IsInvalidArgument, "record.allow is false"},
		{kube("x", Annotations{SeccompProfile: "web/none"}), errdefs.IsNotFound, `"prod/web/none" not found`},
		{kube("x", Annotations{SeccompProfile: "web/bad"}), errdefs.IsDataLoss, "prod/web/bad"},
		{kube("x", Annotations{SeccompProfile: "kube-system/web/app"}), errdefs.IsInvalidArgument, "not the pod's"},
	} {
		before := tc.c.Spec.Linux
		err := apply(tc.c)
		if err == nil || !tc.kind(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c.Annotations, err, tc.want)
		}
		if tc.c.Spec.Linux != before {
			t.Errorf("%+v: spec changed by a failed step", tc.c.Annotations)
		}
	}
	missing := *node
	missing.Record.StoreDir = filepath.Join(dir, "nope")
	c = kube("x", Annotations{SeccompProfile: "web/app"})
	c.Node = &missing
	if err := apply(c); err == nil || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing store: %v", err)
	}
}

// TestWorkloadAnnotationDecoy is issue 21's sixth finding: a pod annotated
// stockade.dev/workload: web in record mode stored prod/web/app, and the
// real web-7c9d8f6b5-x2k4p was then held to it. A Kubernetes pod may now
// only name its own workload: the decoy is refused in record mode and under
// enforce_recorded (it cannot escape its own profile by naming another
// either), and the real workload still records and is held to its profile.
func TestWorkloadAnnotationDecoy(t *testing.T) {
	node, _ := recordStore(t)
	node.Record.Allow = true
	apply := func(c *Container) error {
		_, err := (&SeccompStep{GOARCH: "amd64", Store: storeFor}).Apply(context.Background(), c)
		return err
	}
	kube := func(name string, ann Annotations, n *config.Config) *Container {
		c := seccompContainer("prod", true, nil)
		c.Pod.Name, c.Annotations, c.Node = name, ann, n
		return c
	}
	auto := *node
	auto.Record.EnforceRecorded = true
	for _, pod := range []string{"decoy", "decoy-7c9d8f6b5-x2k4p", "webx-x2k4p", "we"} {
		for _, n := range []*config.Config{node, &auto} {
			c := kube(pod, Annotations{SeccompMode: SeccompModeRecord, Workload: "web"}, n)
			before := c.Spec.Linux
			err := apply(c)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), AnnotationWorkload) {
				t.Errorf("pod %s naming workload web (enforce_recorded %v): %v, want InvalidArgument naming %s", pod, n.Record.EnforceRecorded, err, AnnotationWorkload)
			}
			if c.Result.Record != "" || c.Spec.Linux != before {
				t.Errorf("pod %s: a refused container was marked for recording (%q) or its spec changed", pod, c.Result.Record)
			}
		}
		// Without record mode, under enforce_recorded, too.
		c := kube(pod, Annotations{Workload: "web"}, &auto)
		if err := apply(c); !errdefs.IsInvalidArgument(err) {
			t.Errorf("pod %s naming workload web under enforce_recorded: %v", pod, err)
		}
	}
	// The real workload: recorded under its own name, held to its profile.
	c := kube("web-7c9d8f6b5-x2k4p", Annotations{SeccompMode: SeccompModeRecord}, node)
	if err := apply(c); err != nil || c.Result.Record != "prod/web/app" {
		t.Errorf("real workload recording: %+v, %v", c.Result, err)
	}
	c = kube("web-7c9d8f6b5-x2k4p", Annotations{}, &auto)
	if err := apply(c); err != nil || c.Result.SeccompProfile != "recorded:prod/web/app" {
		t.Errorf("real workload held: %q, %v", c.Result.SeccompProfile, err)
	}
	// Outside Kubernetes the creator holds the containerd socket: any name.
	c = seccompContainer("prod", false, nil)
	c.ContainerdNamespace, c.Annotations, c.Node = "ctr", Annotations{SeccompMode: SeccompModeRecord, Workload: "web"}, node
	if err := apply(c); err != nil || c.Result.Record != "ctr/web/c1" {
		t.Errorf("non-Kubernetes container naming its workload: %q, %v", c.Result.Record, err)
	}
}
