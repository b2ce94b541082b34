package apparmorhost

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Status is what a host offers for AppArmor.
type Status struct {
	// Enabled is true when profiles can be loaded and enforced: the kernel
	// has AppArmor enabled, securityfs exposes its policy interface, and
	// apparmor_parser is installed.
	Enabled bool
	// Reason says why Enabled is false ("" when it is true).
	Reason string
	// Parser is the absolute path of apparmor_parser, "" if not found.
	Parser string
	// ABI is the feature ABI to pin profiles to ("abi/3.0") when the
	// parser's ABI files are installed, else "".
	ABI string
	// Label is the calling process's own AppArmor label ("unconfined"
	// where it is not confined); "" when AppArmor is not enabled, because
	// the legacy /proc/self/attr/current then belongs to another LSM.
	Label string
}

// Prober answers the questions about the host that decide whether and how
// profiles are used. Host is the real one; tests substitute their own.
type Prober interface {
	// Probe reports the host's AppArmor support.
	Probe() Status
	// ProfileLoaded reports whether a profile of that name is loaded.
	ProfileLoaded(name string) (bool, error)
}

// Host probes a filesystem laid out like a Linux root. The zero value
// probes the running host.
type Host struct {
	// Root is the host's root directory; nil means os.DirFS("/").
	Root fs.FS
	// ParserPath is apparmor_parser's configured path; "" searches PATH
	// and then /usr/sbin and /sbin, which a shim's PATH often lacks.
	ParserPath string
	// LookPath finds a program; nil means exec.LookPath.
	LookPath func(file string) (string, error)
}

var _ Prober = Host{}

const (
	enabledFile  = "sys/module/apparmor/parameters/enabled"
	securityDir  = "sys/kernel/security/apparmor"
	profilesFile = securityDir + "/profiles"
	abiFile      = "etc/apparmor.d/abi/3.0"
)

// Probe implements Prober. Parser and ABI are filled in even when AppArmor
// is not enabled, for `stockade check`.
func (h Host) Probe() Status {
	root := h.root()
	var st Status
	st.Parser, _ = h.parser()
	if _, err := fs.Stat(root, abiFile); err == nil {
		st.ABI = "abi/3.0"
	}

	switch b, err := fs.ReadFile(root, enabledFile); {
	case errors.Is(err, fs.ErrNotExist):
		st.Reason = "the kernel has no AppArmor support (/" + enabledFile + " does not exist)"
		return st
	case err != nil:
		st.Reason = fmt.Sprintf("cannot read /%s: %v", enabledFile, err)
		return st
	case strings.TrimSpace(string(b)) != "Y":
		st.Reason = fmt.Sprintf("AppArmor is disabled in the kernel (/%s is %q)", enabledFile, strings.TrimSpace(string(b)))
		return st
	}
	if _, err := fs.Stat(root, securityDir); err != nil {
		st.Reason = "/" + securityDir + " is missing: securityfs is not mounted or AppArmor is not an active LSM"
		return st
	}
	if st.Parser == "" {
		_, err := h.parser()
		st.Reason = err.Error()
		return st
	}
	st.Enabled = true
	st.Label = label(root)
	return st
}

// ProfileLoaded implements Prober by reading the kernel's list of loaded
// profiles, whose lines read "name (mode)".
func (h Host) ProfileLoaded(name string) (bool, error) {
	b, err := fs.ReadFile(h.root(), profilesFile)
	if err != nil {
		return false, fmt.Errorf("apparmor: list loaded profiles: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), name+" (") {
			return true, nil
		}
	}
	return false, sc.Err()
}

func (h Host) root() fs.FS {
	if h.Root != nil {
		return h.Root
	}
	return os.DirFS("/")
}

func (h Host) parser() (string, error) {
	if h.ParserPath != "" {
		if !filepath.IsAbs(h.ParserPath) {
			return "", fmt.Errorf("apparmor_parser path %q is not absolute", h.ParserPath)
		}
		if _, err := fs.Stat(h.root(), strings.TrimPrefix(h.ParserPath, "/")); err != nil {
			return "", fmt.Errorf("apparmor_parser not found at the configured path %s", h.ParserPath)
		}
		return h.ParserPath, nil
	}
	lookPath := h.LookPath
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if p, err := lookPath("apparmor_parser"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	for _, p := range []string{"/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"} {
		if _, err := fs.Stat(h.root(), p[1:]); err == nil {
			return p, nil
		}
	}
	return "", errors.New("apparmor_parser not found (install the apparmor package or set apparmor.parser_path)")
}

// label reads the process's own label. The newer per-LSM file is preferred
// because on stacked-LSM kernels the legacy one may belong to another LSM.
func label(root fs.FS) string {
	for _, f := range []string{"proc/self/attr/apparmor/current", "proc/self/attr/current"} {
		b, err := fs.ReadFile(root, f)
		if err != nil {
			continue
		}
		l := strings.TrimRight(string(b), "\x00\n")
		// "name (enforce)": the mode is not part of the name.
		l, _, _ = strings.Cut(l, " ")
		if l != "" {
			return l
		}
	}
	return "unconfined"
}
