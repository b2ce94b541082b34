package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// annotationImageName is containerd's index annotation for a full image
// reference; `ctr import` and client.Import name the image after it, while
// the OCI ref.name annotation carries only the tag (as containerd's own
// exporter writes it), so `ctr import --base-name` works too.
const annotationImageName = "io.containerd.image.name"

// imageSpec is everything mkimage needs to know about the image besides its
// filesystem.
type imageSpec struct {
	ref        string
	entrypoint []string
	cmd        []string
	env        []string
	workdir    string
	created    time.Time
}

// tagOf returns the tag of a reference such as docker.io/x/y:latest, or
// "latest" when it has none.
func tagOf(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return "latest"
}

// writeLayout writes a single-image, single-platform OCI image layout as an
// uncompressed tar to out, via a temporary file so that make never sees a
// half-written archive.
func writeLayout(out string, spec imageSpec, l *layer) error {
	layerBlob, diffID, err := l.Build()
	if err != nil {
		return err
	}
	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}

	cfg := ocispec.Image{
		Created:  &spec.created,
		Platform: platform,
		Config: ocispec.ImageConfig{
			Env:        spec.env,
			Entrypoint: spec.entrypoint,
			Cmd:        spec.cmd,
			WorkingDir: spec.workdir,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History: []ocispec.History{{
			Created:   &spec.created,
			CreatedBy: "stockade hack/mkimage",
		}},
	}
	cfgBlob, err := jsonBlob(cfg)
	if err != nil {
		return fmt.Errorf("encode image config: %w", err)
	}

	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, cfgBlob),
		Layers:    []ocispec.Descriptor{descriptor(ocispec.MediaTypeImageLayerGzip, layerBlob)},
	}
	manifestBlob, err := jsonBlob(manifest)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}

	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifestBlob)
	manifestDesc.Platform = &platform
	manifestDesc.Annotations = map[string]string{
		ocispec.AnnotationRefName: tagOf(spec.ref),
		annotationImageName:       spec.ref,
	}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("encode oci-layout: %w", err)
	}

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())

	tw := tar.NewWriter(tmp)
	members := []member{
		{ocispec.ImageLayoutFile, layoutJSON},
		{ocispec.ImageIndexFile, indexJSON},
		{"blobs/", nil},
		{"blobs/sha256/", nil},
	}
	for _, b := range []blob{layerBlob, cfgBlob, manifestBlob} {
		name := "blobs/" + b.digest.Algorithm().String() + "/" + b.digest.Encoded()
		members = append(members, member{name, b.data})
	}
	for _, m := range members {
		if err := writeMember(tw, m.name, m.data, spec.created); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	// CreateTemp makes the file 0600; the images are not secret.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// member is one file or directory of the layout archive.
type member struct {
	name string
	data []byte
}

// writeMember writes a directory (name ending in "/") or a regular file.
func writeMember(tw *tar.Writer, name string, data []byte, mtime time.Time) error {
	h := &tar.Header{Name: name, ModTime: mtime, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}
	if strings.HasSuffix(name, "/") {
		h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
	}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if len(data) > 0 {
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func jsonBlob(v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, err
	}
	return newBlob(data), nil
}

func descriptor(mediaType string, b blob) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: b.digest, Size: int64(len(b.data))}
}
