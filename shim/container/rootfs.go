package container

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// RootfsDir is where a bundle's rootfs is mounted.
func RootfsDir(bundle string) string { return filepath.Join(bundle, "rootfs") }

// mountRootfs mounts containerd's rootfs mounts on bundle/rootfs. A mount
// type the kernel does not know is the caller's error, reported before
// anything is mounted.
func (c *Container) mountRootfs(ctx context.Context) error {
	known, err := kernelFilesystems()
	if err != nil {
		return err
	}
	for i, m := range c.cfg.Rootfs {
		if m.Type == "bind" || m.Type == "rbind" || known[m.Type] {
			continue
		}
		return fmt.Errorf("rootfs mount %d: unsupported type %q: %w", i, m.Type, errdefs.ErrInvalidArgument)
	}
	target := RootfsDir(c.Bundle)
	if err := os.MkdirAll(target, 0o711); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := mount.All(c.cfg.Rootfs, target); err != nil {
		// mount.All may have mounted some before failing.
		_ = mount.UnmountRecursive(target, 0)
		return fmt.Errorf("mount rootfs: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	c.rootfs = target
	return nil
}

func (c *Container) unmountRootfs(ctx context.Context) {
	if c.rootfs == "" {
		return
	}
	if err := mount.UnmountRecursive(c.rootfs, 0); err != nil {
		log.G(ctx).WithError(err).WithField("container_id", c.ID).Warn("unmount rootfs")
		return
	}
	c.rootfs = ""
}

// kernelFilesystems lists /proc/filesystems.
func kernelFilesystems() (map[string]bool, error) {
	f, err := os.Open("/proc/filesystems")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			known[fields[len(fields)-1]] = true
		}
	}
	return known, sc.Err()
}
