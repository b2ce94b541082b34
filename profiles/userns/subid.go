package userns

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// SubIDUser is the user whose /etc/subuid and /etc/subgid entries become the
// pool when the node config names none. A dedicated entry is how operators
// carve stockade's IDs out of the space that rootless users and the kubelet
// ("kubelet:..." entries) draw from.
const SubIDUser = "stockade"

// Default locations of the subordinate ID files (shadow-utils).
const (
	SubUIDPath = "/etc/subuid"
	SubGIDPath = "/etc/subgid"
)

// maxSubIDLine bounds one line; real entries are a few dozen bytes.
const maxSubIDLine = 4096

// SubIDEntry is one "name:start:count" line of /etc/subuid or /etc/subgid.
type SubIDEntry struct {
	Name  string
	Start uint32
	Count uint32
	// File and Line locate the entry for error messages.
	File string
	Line int
}

func (e SubIDEntry) where() string { return fmt.Sprintf("%s:%d", e.File, e.Line) }

func (e SubIDEntry) end() uint64 { return uint64(e.Start) + uint64(e.Count) }

// ParseSubIDs reads a subordinate-ID file. Blank lines and '#' comments are
// skipped; any other line must be name:start:count with decimal numbers, or
// the error names file and line: an entry that cannot be read might be the
// one that overlaps the pool.
func ParseSubIDs(r io.Reader, file string) ([]SubIDEntry, error) {
	var out []SubIDEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxSubIDLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("%s:%d: want name:start:count, got %q: %w", file, n, line, ErrInvalid)
		}
		start, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: start %q is not an ID: %w", file, n, parts[1], ErrInvalid)
		}
		count, err := strconv.ParseUint(parts[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: count %q is not a number of IDs: %w", file, n, parts[2], ErrInvalid)
		}
		if start+count > MaxIDEnd {
			return nil, fmt.Errorf("%s:%d: %d+%d extends past the last valid ID %d: %w", file, n, start, count, MaxIDEnd-1, ErrInvalid)
		}
		out = append(out, SubIDEntry{Name: parts[0], Start: uint32(start), Count: uint32(count), File: file, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", file, err, ErrInvalid)
	}
	return out, nil
}

// ResolvePool picks the node's pool, in order:
//
//  1. configured (the node config's userns.pool) when non-empty;
//  2. the SubIDUser entry of subuid and subgid, which must both exist and
//     agree, since one range serves as UIDs and GIDs;
//  3. DefaultPool.
//
// Whatever the source, the pool must not overlap another user's
// subordinate IDs in either file: that user's rootless containers would
// share host IDs with a pod.
func ResolvePool(configured string, subuid, subgid []SubIDEntry) (Pool, error) {
	var (
		pool Pool
		err  error
	)
	switch {
	case strings.TrimSpace(configured) != "":
		if pool, err = ParsePool(configured); err != nil {
			return Pool{}, err
		}
	default:
		u, err := ownEntry(subuid)
		if err != nil {
			return Pool{}, err
		}
		g, err := ownEntry(subgid)
		if err != nil {
			return Pool{}, err
		}
		switch {
		case u == nil && g == nil:
			pool = DefaultPool()
		case u == nil || g == nil:
			have, missing := u, "subgid"
			if u == nil {
				have, missing = g, "subuid"
			}
			return Pool{}, fmt.Errorf("%s: %s has an entry but %s has none; both must give %s the same range: %w",
				have.where(), SubIDUser, missing, SubIDUser, ErrInvalid)
		case u.Start != g.Start || u.Count != g.Count:
			return Pool{}, fmt.Errorf("%s (%d+%d) and %s (%d+%d) disagree; both must give %s the same range: %w",
				u.where(), u.Start, u.Count, g.where(), g.Start, g.Count, SubIDUser, ErrInvalid)
		default:
			pool = Pool{Start: u.Start, Size: u.Count, Source: u.where() + " entry for " + SubIDUser}
			if err := pool.Validate(); err != nil {
				return Pool{}, err
			}
		}
	}
	for _, e := range append(append([]SubIDEntry(nil), subuid...), subgid...) {
		if e.Name == SubIDUser || e.Count == 0 {
			continue
		}
		if uint64(e.Start) < pool.End() && uint64(pool.Start) < e.end() {
			return Pool{}, fmt.Errorf("pool %s overlaps %s (user %s, %d-%d): %w",
				pool, e.where(), e.Name, e.Start, e.end()-1, ErrInvalid)
		}
	}
	return pool, nil
}

// ownEntry finds the single SubIDUser entry; several are refused because a
// pool is one contiguous range.
func ownEntry(entries []SubIDEntry) (*SubIDEntry, error) {
	var found *SubIDEntry
	for i := range entries {
		if entries[i].Name != SubIDUser {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%s and %s: more than one entry for %s; merge them into one range: %w",
				found.where(), entries[i].where(), SubIDUser, ErrInvalid)
		}
		found = &entries[i]
	}
	return found, nil
}
