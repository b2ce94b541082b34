package userns

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxIDMapLines is the kernel's limit on uid_map/gid_map lines (340 since 4.15).
const maxIDMapLines = 340

// ParseIDMap parses the uid_map or gid_map format of /proc/<pid>/:
// "container-id host-id count" per line, separated by blanks.
func ParseIDMap(r io.Reader) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 || len(out) == maxIDMapLines {
			return nil, fmt.Errorf("id map line %d %q: want container-id host-id count: %w", n, sc.Text(), ErrInvalid)
		}
		var v [3]uint32
		for i, s := range f {
			x, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %d: %q is not an ID: %w", n, s, ErrInvalid)
			}
			v[i] = uint32(x)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("id map: %w", err)
	}
	return out, nil
}

// IsInitialMapping reports whether m is the identity mapping of the initial
// user namespace ("0 0 4294967295"): a process with it is not remapped.
func IsInitialMapping(m []specs.LinuxIDMapping) bool {
	return len(m) == 1 && m[0].ContainerID == 0 && m[0].HostID == 0 && m[0].Size == MaxIDEnd
}

// SameMappings reports whether a and b map the same IDs in the same order.
func SameMappings(a, b []specs.LinuxIDMapping) bool { return slices.Equal(a, b) }

// ToHost maps container ID id to its host ID.
func ToHost(m []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, e := range m {
		if id >= e.ContainerID && uint64(id) < uint64(e.ContainerID)+uint64(e.Size) {
			return e.HostID + (id - e.ContainerID), true
		}
	}
	return 0, false
}

// MountOptionValue renders mappings in containerd's core/mount syntax,
// "container:host:size[,container:host:size...]".
func MountOptionValue(m []specs.LinuxIDMapping) string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = fmt.Sprintf("%d:%d:%d", e.ContainerID, e.HostID, e.Size)
	}
	return strings.Join(parts, ",")
}

// RootfsMountOptions are the options that make containerd's core/mount
// (v2.3) idmap a rootfs mount: on "overlay" it idmaps every lowerdir through
// a temporary read-only idmapped clone of their common parent (the upperdir
// is not idmapped, so its root must belong to the range's root); on a bind
// it idmaps the bind itself. Returns nil if either map is empty.
func RootfsMountOptions(uid, gid []specs.LinuxIDMapping) []string {
	if len(uid) == 0 || len(gid) == 0 {
		return nil
	}
	return []string{"uidmap=" + MountOptionValue(uid), "gidmap=" + MountOptionValue(gid)}
}
