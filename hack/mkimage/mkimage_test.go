package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testLayer(t *testing.T) *layer {
	t.Helper()
	l := newLayer(time.Unix(0, 0).UTC())
	for _, err := range []error{
		addBase(l),
		l.File("/bin/tool", 0o755, []byte("#!/bin/sh\n")),
		l.Symlink("/bin/sh", "busybox"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestLayerIsReproducible(t *testing.T) {
	a, diffA, err := testLayer(t).Build()
	if err != nil {
		t.Fatal(err)
	}
	b, diffB, err := testLayer(t).Build()
	if err != nil {
		t.Fatal(err)
	}
	if a.digest != b.digest || diffA != diffB {
		t.Fatalf("same input, different digests: %s/%s vs %s/%s", a.digest, diffA, b.digest, diffB)
	}

	zr, err := gzip.NewReader(bytes.NewReader(a.data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); got != diffA {
		t.Fatalf("diff ID %s is not the digest of the uncompressed tar %s", diffA, got)
	}
	modes := map[string]int64{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	if modes["tmp/"] != 0o1777 {
		t.Errorf("tmp/ mode %o, want 1777", modes["tmp/"])
	}
	if _, ok := modes["bin/"]; !ok {
		t.Error("parent directory bin/ was not created")
	}
}

func TestLayoutIndexNamesImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "img.tar")
	spec := imageSpec{ref: "docker.io/stockade-test/x:v1", cmd: []string{"sh"}, created: time.Unix(0, 0).UTC()}
	if err := writeLayout(out, spec, testLayer(t)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(idx.Manifests))
	}
	m := idx.Manifests[0]
	if m.Annotations[ocispec.AnnotationRefName] != "v1" || m.Annotations[annotationImageName] != spec.ref {
		t.Errorf("annotations %v", m.Annotations)
	}
	blob := files["blobs/sha256/"+m.Digest.Encoded()]
	if digest.FromBytes(blob) != m.Digest || int64(len(blob)) != m.Size {
		t.Error("manifest blob does not match its descriptor")
	}
}

func TestTagOf(t *testing.T) {
	for ref, want := range map[string]string{
		"docker.io/a/b:latest":      "latest",
		"localhost:5000/a/b":        "latest",
		"localhost:5000/a/b:v2":     "v2",
		"docker.io/stockade-test/x": "latest",
	} {
		if got := tagOf(ref); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", ref, got, want)
		}
	}
}
