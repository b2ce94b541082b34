package idalloc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/stockade-dev/stockade/profiles/userns"
)

// ReadProcIDMaps reads the uid and gid maps of process pid, i.e. the
// mappings of the user namespace it runs in. proc is where procfs is
// mounted ("/proc"; tests pass a directory of fake files).
func ReadProcIDMaps(proc string, pid int) (uid, gid []specs.LinuxIDMapping, err error) {
	read := func(name string) ([]specs.LinuxIDMapping, error) {
		f, err := os.Open(filepath.Join(proc, strconv.Itoa(pid), name))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		m, err := userns.ParseIDMap(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
		return m, nil
	}
	if uid, err = read("uid_map"); err != nil {
		return nil, nil, err
	}
	if gid, err = read("gid_map"); err != nil {
		return nil, nil, err
	}
	return uid, gid, nil
}
