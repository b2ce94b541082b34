package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

// Snapshotter is the snapshotter images are unpacked for; it is containerd's
// default and the one CRI is configured with.
const Snapshotter = "overlayfs"

// importImages imports each OCI layout tarball into namespace ns and unpacks
// every image it names, so that neither client.WithNewSnapshot nor CRI has
// to unpack on first use (which would skew the first latency measured).
func importImages(ctx context.Context, c *client.Client, ns string, tarballs []string) error {
	ctx = namespaces.WithNamespace(ctx, ns)
	for _, path := range tarballs {
		imgs, err := importOne(ctx, c, path)
		if err != nil {
			return err
		}
		if len(imgs) == 0 {
			return fmt.Errorf("import %s into %s: the index names no image", filepath.Base(path), ns)
		}
		for _, img := range imgs {
			image := client.NewImage(c, img)
			if err := image.Unpack(ctx, Snapshotter); err != nil {
				return fmt.Errorf("unpack %s in %s: %w", img.Name, ns, err)
			}
		}
	}
	return nil
}

func importOne(ctx context.Context, c *client.Client, path string) ([]images.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// mkimage writes the full reference in io.containerd.image.name, which
	// client.Import prefers over the bare tag in ref.name; the default
	// platform matcher keeps only this host's manifest.
	imgs, err := c.Import(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", filepath.Base(path), err)
	}
	return imgs, nil
}
