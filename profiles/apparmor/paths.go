package apparmor

import (
	"path"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxPathLen is PATH_MAX: longer destinations cannot be mounted anyway.
const maxPathLen = 4096

const (
	writableComment = "# Writable: the root filesystem unless read-only, and rw mounts."
	readonlyComment = "# Read-only mounts below a writable location stay read-only."
)

// fileRules derives the write rules from the spec: the root filesystem (if
// writable) and every writable mount get write and link permission; a
// read-only mount below a writable location gets an explicit deny, so the
// profile says what the mount table says even if the mount were changed.
func fileRules(spec *specs.Spec) ([]string, error) {
	// writable maps a cleaned destination to whether it is writable. Later
	// mounts at the same destination shadow earlier ones, as in runc.
	writable := map[string]bool{"/": spec.Root == nil || !spec.Root.Readonly}
	for _, m := range spec.Mounts {
		dest, err := cleanDestination(m.Destination)
		if err != nil {
			return nil, err
		}
		writable[dest] = !readOnly(m.Options)
	}

	dests := make([]string, 0, len(writable))
	for d := range writable {
		dests = append(dests, d)
	}
	sort.Strings(dests)

	var allow, deny []string
	for _, d := range dests {
		if writable[d] {
			if d == "/" || !writableParent(d, writable) {
				allow = append(allow, subtree(d)+" wl,")
			}
			continue
		}
		// Denying writes on a read-only mount only matters where a writable
		// ancestor grants them, and is wrong where a writable mount sits
		// below it: deny rules win over every allow rule in AppArmor.
		if writableParent(d, writable) && !hasWritableBelow(d, dests, writable) {
			deny = append(deny, "deny "+subtree(d)+" wl,")
		}
	}
	if len(allow) > 0 {
		allow = append([]string{writableComment}, allow...)
	}
	if len(deny) > 0 {
		deny = append([]string{readonlyComment}, deny...)
	}
	return append(allow, deny...), nil
}

// writableParent reports whether the nearest mounted strict ancestor of d
// (the root filesystem if no mount is nearer) is writable.
func writableParent(d string, writable map[string]bool) bool {
	if d == "/" {
		return false
	}
	for p := parent(d); ; p = parent(p) {
		if w, ok := writable[p]; ok {
			return w
		}
	}
}

func hasWritableBelow(d string, dests []string, writable map[string]bool) bool {
	prefix := d + "/"
	for _, o := range dests {
		if strings.HasPrefix(o, prefix) && writable[o] {
			return true
		}
	}
	return false
}

func parent(d string) string {
	if d == "/" {
		return "/"
	}
	return path.Dir(d)
}

// readOnly applies mount(8) semantics: the last of "ro"/"rw" wins. "rro"
// (recursive read-only, which runc supports) is read-only as well.
func readOnly(options []string) bool {
	ro := false
	for _, o := range options {
		switch o {
		case "ro", "rro":
			ro = true
		case "rw", "rrw":
			ro = false
		}
	}
	return ro
}

// cleanDestination validates a mount destination from the spec and returns
// its lexically clean form, which is where runc will mount it.
func cleanDestination(dest string) (string, error) {
	bad := func(reason string) error {
		return &InvalidError{Field: "mount destination", Value: dest, Reason: reason}
	}
	switch {
	case dest == "":
		return "", bad("is empty")
	case strings.IndexByte(dest, 0) >= 0:
		return "", bad("contains a NUL byte")
	case !strings.HasPrefix(dest, "/"):
		return "", bad("is not an absolute path")
	case len(dest) > maxPathLen:
		return "", bad("is longer than PATH_MAX")
	}
	return path.Clean(dest), nil
}

// subtree returns the quoted AppArmor glob for d and everything below it.
// d must come from cleanDestination.
func subtree(d string) string {
	if d == "/" {
		return "/{,**}"
	}
	return `"` + escapePath(d) + `{,/**}"`
}

// escapePath makes p a literal inside a quoted AppArmor path. Every byte
// outside a small safe set becomes a three-digit octal escape: the parser
// turns those into literal characters even when the character is a glob
// (*?[]{}^), a quote, a backslash, '@' (variables), a comma, a space or a
// control character. Backslash escapes are not an option: "\?" comes out of
// apparmor_parser 3.0 as a regex quantifier, not a literal '?'.
func escapePath(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if safePathByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('\\')
		b.WriteByte('0' + (c >> 6))
		b.WriteByte('0' + ((c >> 3) & 7))
		b.WriteByte('0' + (c & 7))
	}
	return b.String()
}

func safePathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '/' || c == '.' || c == '_' || c == '-'
}
