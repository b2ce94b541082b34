package idmapfs

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// idmapFilesystems are the filesystems whose kernel drivers accept
// MOUNT_ATTR_IDMAP (FS_ALLOW_IDMAP), with the first kernel that does.
// The list is deliberately conservative: a filesystem missing here is
// bind-mounted without an idmap (files show up as nobody inside, world
// permissions apply), which degrades a volume; idmapping a filesystem that
// refuses it fails the whole container (mount_setattr: EINVAL). overlayfs is
// not here: it takes idmapped *layers* (which is how the rootfs is remapped),
// but an overlay mount itself refuses MOUNT_ATTR_IDMAP (EINVAL, measured on
// 6.18 with containerd's image volumes, which it hands over as binds of an
// overlay).
var idmapFilesystems = map[int64]struct {
	name         string
	major, minor int
}{
	unix.EXT4_SUPER_MAGIC:  {"ext4", 5, 12}, // also ext2/ext3 through the ext4 driver
	unix.XFS_SUPER_MAGIC:   {"xfs", 5, 12},
	unix.MSDOS_SUPER_MAGIC: {"fat", 5, 12},
	unix.BTRFS_SUPER_MAGIC: {"btrfs", 5, 15},
	unix.F2FS_SUPER_MAGIC:  {"f2fs", 5, 18},
	unix.TMPFS_MAGIC:       {"tmpfs", 6, 3},
}

// IDMapSupported reports whether the filesystem holding path can be
// mounted with an ID mapping on this kernel, and names the filesystem (its
// magic number when unknown) for logs.
func IDMapSupported(path string) (bool, string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, "", fmt.Errorf("statfs %s: %w", path, err)
	}
	fs, ok := idmapFilesystems[int64(st.Type)]
	if !ok {
		return false, fmt.Sprintf("0x%x", uint64(st.Type)), nil
	}
	major, minor := kernelVersion()
	return major > fs.major || (major == fs.major && minor >= fs.minor), fs.name, nil
}

var (
	kernelOnce         sync.Once
	kernMajor, kernMin int
)

// kernelVersion is the running kernel's major.minor (0.0 if unreadable,
// which makes every filesystem unsupported rather than failing containers).
func kernelVersion() (int, int) {
	kernelOnce.Do(func() {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return
		}
		kernMajor, kernMin = parseKernelRelease(unix.ByteSliceToString(u.Release[:]))
	})
	return kernMajor, kernMin
}

// parseKernelRelease reads "6.1.0-18-amd64" as 6, 1.
func parseKernelRelease(rel string) (int, int) {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, 0
	}
	end := 0
	for end < len(parts[1]) && parts[1][end] >= '0' && parts[1][end] <= '9' {
		end++
	}
	minor, err := strconv.Atoi(parts[1][:end])
	if err != nil {
		return 0, 0
	}
	return major, minor
}
