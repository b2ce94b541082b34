package profiles

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stockade-dev/stockade/node/fileutil"
	"github.com/stockade-dev/stockade/profiles/recorded"
)

// entry is what the agent remembers about one profile name across
// restarts.
type entry struct {
	// Written is the checksum of the profile the agent last wrote into
	// the store; a stored profile with another checksum holds recordings
	// the cluster has not seen.
	Written string `json:"written,omitempty"`
	// Accounted is how many of the stored profile's runs the cluster
	// already has (the object's runs when the agent wrote it, plus what
	// the node merged since): a new local recording adds to the stored
	// runs, and the difference is what the node merges.
	Accounted int `json:"accounted"`
	// Synced is set once the object existed with this node's knowledge:
	// only then does the object's absence mean it was deleted.
	Synced bool `json:"synced,omitempty"`
	// Pending is the checksum of a profile about to be written, and
	// PendingRuns its runs: a crash between writing and noting the write
	// is resolved on the next sync by comparing the store with it.
	Pending     string `json:"pending,omitempty"`
	PendingRuns int    `json:"pendingRuns,omitempty"`
}

// state is the agent's memory, one entry per profile name.
type state struct {
	path    string
	Entries map[string]*entry `json:"entries"`
}

func loadState(path string) (*state, error) {
	s := &state{path: path, Entries: map[string]*entry{}}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, s); err != nil || s.Entries == nil {
		// Without its memory the agent merges every local profile once
		// more: runs may be counted twice, no syscall is lost.
		s.Entries = map[string]*entry{}
		return s, fmt.Errorf("profile sync state %s is damaged, starting over: %v", path, err)
	}
	return s, nil
}

func (s *state) save() error {
	if s.path == "" {
		return nil
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return fileutil.WriteFile(s.path, data, 0o600)
}

func (s *state) get(n recorded.Name) *entry {
	e := s.Entries[n.String()]
	if e == nil {
		e = &entry{}
		s.Entries[n.String()] = e
	}
	return e
}
