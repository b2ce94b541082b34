package seccomp

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A Cache with a directory is node-wide: every shim on the node (one per
// pod) finds there the profiles any of them generated, by the same content
// hash as in memory, so a pod's first container reads a file instead of
// running Generate (issue 14: Generate was the largest step of a shim's
// first Create). The hash also covers the generator, the build ID of the
// running binary: a new stockade never reads an old one's profiles.
//
// The directory must be root's and writable by root alone (it sits under
// /run/stockade, where libcontainer keeps its state): a profile read from it
// is applied as is. Files are written whole to a temporary name and renamed,
// so a reader sees a whole profile or none; one that does not decode is
// generated again and replaced. Nothing is fsynced: a lost file is
// regenerated.

// SetDir adds the directory layer. generator identifies the code that
// generates (GeneratorID); an empty one is refused.
func (c *Cache) SetDir(dir string, generator []byte) error {
	if len(generator) == 0 {
		return errors.New("seccomp cache: no generator id")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seccomp cache: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("seccomp cache: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("seccomp cache: %s is not a directory only this user can write (%v, uid %d)", dir, fi.Mode(), st.Uid)
	}
	c.mu.Lock()
	c.dir, c.generator = dir, append([]byte(nil), generator...)
	c.mu.Unlock()
	return nil
}

// fileOf is the file for key, "" without a directory.
func (c *Cache) fileOf(key [sha256.Size]byte) string {
	c.mu.Lock()
	dir, gen := c.dir, c.generator
	c.mu.Unlock()
	if dir == "" {
		return ""
	}
	h := sha256.New()
	h.Write(gen)
	h.Write([]byte{0})
	h.Write(key[:])
	return filepath.Join(dir, hex.EncodeToString(h.Sum(nil))+".json")
}

// load reads a profile from the directory; nil when there is none or it
// does not decode.
func load(path string) *specs.LinuxSeccomp {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(b, &p); err != nil || p.DefaultAction == "" {
		return nil
	}
	return &p
}

// storeAndReload writes a profile to the directory, whole or not at all,
// and returns it as a reader will decode it; nil if it cannot be encoded.
func storeAndReload(path string, p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	var out specs.LinuxSeccomp
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return &out
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return &out
}

// GeneratorID is the Go build ID of the running executable: it changes with
// any change to the binary, so with any change to Generate.
func GeneratorID() ([]byte, error) {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("build id: %w", err)
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return nil, errors.New("build id: no .note.go.buildid section")
	}
	d, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("build id: %w", err)
	}
	// An ELF note: namesz, descsz, type, "Go\0\0", then the ID.
	const header = 16
	if len(d) <= header || !bytes.Equal(d[12:16], []byte("Go\x00\x00")) {
		return nil, errors.New("build id: malformed note")
	}
	return bytes.TrimRight(d[header:], "\x00"), nil
}
