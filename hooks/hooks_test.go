package hooks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

type fakeStep struct {
	name   string
	fail   bool
	log    *[]string
	undone *[]string
}

func (f fakeStep) Name() string { return f.name }

func (f fakeStep) Apply(ctx context.Context, c *Container) (Undo, error) {
	*f.log = append(*f.log, f.name)
	if f.fail {
		return nil, errors.New("boom")
	}
	return func(context.Context) error { *f.undone = append(*f.undone, f.name); return nil }, nil
}

func TestPipelineRollsBackInReverse(t *testing.T) {
	var ran, undone []string
	p := Pipeline{
		fakeStep{name: "a", log: &ran, undone: &undone},
		fakeStep{name: "b", log: &ran, undone: &undone},
		fakeStep{name: "c", fail: true, log: &ran, undone: &undone},
		fakeStep{name: "d", log: &ran, undone: &undone},
	}
	_, err := p.Apply(context.Background(), &Container{})
	if err == nil || !strings.HasPrefix(err.Error(), "c: ") {
		t.Fatalf("error %v does not name the failing step", err)
	}
	if strings.Join(ran, "") != "abc" || strings.Join(undone, "") != "ba" {
		t.Errorf("ran %v, undone %v; want abc and ba", ran, undone)
	}

	ran, undone = nil, nil
	undo, err := p[:2].Apply(context.Background(), &Container{})
	if err != nil {
		t.Fatal(err)
	}
	if err := undo(context.Background()); err != nil || strings.Join(undone, "") != "ba" {
		t.Errorf("undo: %v %v", undone, err)
	}
	// Undo is safe to call twice.
	_ = undo(context.Background())
	if len(undone) != 2 {
		t.Errorf("second undo ran steps again: %v", undone)
	}
}

func TestParseAnnotations(t *testing.T) {
	a, err := ParseAnnotations(map[string]string{
		"io.kubernetes.cri.sandbox-id": "x",
		AnnotationSeccompMode:          "complain",
	})
	if err != nil || a.SeccompMode != "complain" {
		t.Fatalf("%+v %v", a, err)
	}
	a, err = ParseAnnotations(map[string]string{
		AnnotationSeccompMode: "record", AnnotationSeccompProfile: "prod/web/app", AnnotationWorkload: "web-v2",
	})
	if err != nil || a.SeccompMode != SeccompModeRecord || a.SeccompProfile != "prod/web/app" || a.Workload != "web-v2" {
		t.Fatalf("%+v %v", a, err)
	}
	if a, err = ParseAnnotations(map[string]string{AnnotationSeccompProfile: "web/app"}); err != nil || a.SeccompProfile != "web/app" {
		t.Fatalf("%+v %v", a, err)
	}
	for _, kv := range [][2]string{
		{"stockade.dev/bogus", "x"},
		{AnnotationSeccompMode, "nonsense"},
		{AnnotationSeccompProfile, "../etc/passwd"},
		{AnnotationSeccompProfile, strings.Repeat("a", 300)},
		{AnnotationSeccompProfile, "web"},
		{AnnotationSeccompProfile, "a/b/c/d"},
		{AnnotationSeccompProfile, "ns/../c"},
		{AnnotationSeccompProfile, "Web/app"},
		{AnnotationWorkload, ".."},
		{AnnotationWorkload, "a/b"},
	} {
		k, v := kv[0], kv[1]
		_, err := ParseAnnotations(map[string]string{k: v})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: %v; want InvalidArgument naming the key", k, v, err)
		}
	}
}

func TestPipelineTimesEachStep(t *testing.T) {
	var ran, undone []string
	p := Pipeline{fakeStep{name: "a", log: &ran, undone: &undone}, fakeStep{name: "b", log: &ran, undone: &undone}}
	c := &Container{Timings: []Timing{{Step: "config"}}}
	if _, err := p.Apply(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tm := range c.Timings {
		names = append(names, tm.Step)
	}
	if strings.Join(names, ",") != "config,a,b" {
		t.Errorf("timed steps %v, want config,a,b", names)
	}
}
