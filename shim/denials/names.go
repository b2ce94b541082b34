package denials

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stockade-dev/stockade/denial"
)

// maxComponent keeps an escaped name well inside NAME_MAX (255) even after a
// ".log.NN" suffix is appended.
const maxComponent = 200

// EscapeName turns a namespace, pod, UID or container name into one safe path
// component. Names come from CRI annotations and containerd IDs, which the
// shim does not fully control, so nothing in them may steer a path: every
// byte outside [A-Za-z0-9.-] is percent-escaped ('/', NUL, '%', and '_',
// which separates the parts of a pod directory name), and the names "." and
// ".." are escaped whole. The mapping is reversible (UnescapeName), so two
// different names never share a file. Over-long names are cut and suffixed
// with a hash of the whole name, which keeps them distinct.
func EscapeName(s string) string {
	if s == "" {
		return "-"
	}
	// "-" is how the empty name is spelled, so a literal "-" is escaped.
	switch s {
	case ".", "..":
		return strings.Repeat("%2E", len(s))
	case "-":
		return "%2D"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	out := b.String()
	if len(out) > maxComponent {
		sum := sha256.Sum256([]byte(s))
		out = out[:maxComponent-17] + "~" + hex.EncodeToString(sum[:8])
	}
	return out
}

// UnescapeName reverses EscapeName for names that were not cut.
func UnescapeName(s string) (string, error) {
	if s == "-" {
		return "", nil
	}
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q: %w", s, err)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// PodDir is the directory of one pod under the sink root, named like
// kubelet's /var/log/pods entries: <namespace>_<pod>_<pod-uid>.
func PodDir(namespace, pod, podUID string) string {
	return EscapeName(namespace) + "_" + EscapeName(pod) + "_" + EscapeName(podUID)
}

// ParsePodDir splits a PodDir name back into its parts.
func ParsePodDir(name string) (namespace, pod, podUID string, err error) {
	parts := strings.Split(name, "_")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("%q is not a <namespace>_<pod>_<uid> directory", name)
	}
	var out [3]string
	for i, p := range parts {
		if out[i], err = UnescapeName(p); err != nil {
			return "", "", "", err
		}
	}
	return out[0], out[1], out[2], nil
}

// LogFileName is the live file of one container inside its pod directory.
func LogFileName(container string) string {
	return EscapeName(container) + ".log"
}

// RotatedName is the n-th rotated copy of a live file (n >= 1; 1 is newest).
func RotatedName(live string, n int) string {
	return live + "." + strconv.Itoa(n)
}

// LogPath is where the records of a container go under root.
func LogPath(root string, a denial.Attribution) string {
	return filepath.Join(root, PodDir(a.Namespace, a.Pod, a.PodUID), LogFileName(a.Container))
}
