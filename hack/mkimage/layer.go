package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// layer collects the entries of one filesystem layer. Entries are keyed by
// their clean relative path so that a later add replaces an earlier one, and
// they are written sorted so the same inputs always give the same digest.
type layer struct {
	mtime   time.Time
	entries map[string]*tar.Header
	data    map[string][]byte
}

func newLayer(mtime time.Time) *layer {
	return &layer{mtime: mtime, entries: map[string]*tar.Header{}, data: map[string][]byte{}}
}

// cleanPath turns "/bin/sh" or "bin/sh/" into "bin/sh": tar members of an
// image layer are relative to the root filesystem.
func cleanPath(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "", fmt.Errorf("path %q names the root directory", p)
	}
	return c, nil
}

// addParents creates any missing parent directories with mode 0755, so that
// unpackers that do not create them implicitly still see a sane tree.
func (l *layer) addParents(p string) {
	for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if _, ok := l.entries[dir]; !ok {
			l.entries[dir] = l.header(dir, tar.TypeDir, 0o755)
		}
	}
}

func (l *layer) header(name string, typ byte, mode int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		ModTime:  l.mtime,
		Uname:    "root",
		Gname:    "root",
		Format:   tar.FormatPAX,
	}
}

// Dir adds a directory; mode may carry the sticky bit (0o1777 for /tmp).
func (l *layer) Dir(p string, mode int64) error {
	c, err := cleanPath(p)
	if err != nil {
		return err
	}
	l.addParents(c)
	l.entries[c] = l.header(c, tar.TypeDir, mode)
	return nil
}

// File adds a regular file with the given content.
func (l *layer) File(p string, mode int64, content []byte) error {
	c, err := cleanPath(p)
	if err != nil {
		return err
	}
	l.addParents(c)
	h := l.header(c, tar.TypeReg, mode)
	h.Size = int64(len(content))
	l.entries[c] = h
	l.data[c] = content
	return nil
}

// Symlink adds a symbolic link p pointing at target (kept verbatim, so a
// relative target stays relative to p's directory inside the image).
func (l *layer) Symlink(p, target string) error {
	c, err := cleanPath(p)
	if err != nil {
		return err
	}
	l.addParents(c)
	h := l.header(c, tar.TypeSymlink, 0o777)
	h.Linkname = target
	l.entries[c] = h
	return nil
}

// blob is one content-addressed piece of the image.
type blob struct {
	digest digest.Digest
	data   []byte
}

// Build writes the layer as tar.gz and returns the compressed blob and the
// diff ID (the digest of the uncompressed tar, which the image config lists).
func (l *layer) Build() (blob, digest.Digest, error) {
	names := make([]string, 0, len(l.entries))
	for n := range l.entries {
		names = append(names, n)
	}
	sort.Strings(names)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		h := *l.entries[n]
		if h.Typeflag == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(&h); err != nil {
			return blob{}, "", fmt.Errorf("write tar header %s: %w", n, err)
		}
		if content, ok := l.data[n]; ok {
			if _, err := tw.Write(content); err != nil {
				return blob{}, "", fmt.Errorf("write tar member %s: %w", n, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return blob{}, "", fmt.Errorf("close tar: %w", err)
	}
	diffID := digest.FromBytes(raw.Bytes())

	// The gzip header carries no name and a zero mtime, so the compressed
	// digest is as reproducible as the tar itself.
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return blob{}, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return blob{}, "", fmt.Errorf("gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return blob{}, "", fmt.Errorf("gzip layer: %w", err)
	}
	return newBlob(gz.Bytes()), diffID, nil
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: digest.NewDigestFromBytes(digest.SHA256, sum[:]), data: data}
}
