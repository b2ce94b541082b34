package config

import (
	"fmt"
	"path/filepath"
)

// Record is the [record] section. Owned by record mode: learning the
// syscalls of a workload and enforcing the profile recorded for it.
type Record struct {
	// Allow lets pods ask for record mode with the annotation
	// stockade.dev/seccomp-mode: record. Recording does not loosen
	// anything (the container runs under the usual profile), but it costs
	// every syscall on the node a little while a recorded container runs,
	// and it writes to the store, so it is the node's choice.
	Allow bool `toml:"allow"`
	// StoreDir is the profile store: one JSON file per recorded profile,
	// <store_dir>/<namespace>/<workload>/<container>.json.
	StoreDir string `toml:"store_dir"`
	// EnforceRecorded makes every container for which the store holds a
	// profile (same namespace, workload and container name) run under it,
	// intersected with the generated profile, without an annotation.
	EnforceRecorded bool `toml:"enforce_recorded"`
}

// DefaultRecordStoreDir is the profile store when the config names none.
const DefaultRecordStoreDir = "/var/lib/stockade/profiles"

func defaultRecord() Record {
	return Record{StoreDir: DefaultRecordStoreDir}
}

func (r *Record) validate() error {
	if !filepath.IsAbs(r.StoreDir) || filepath.Clean(r.StoreDir) != r.StoreDir {
		return fmt.Errorf("key record.store_dir: must be a clean absolute path, got %q", r.StoreDir)
	}
	return nil
}
