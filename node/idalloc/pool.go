package idalloc

import (
	"errors"
	"fmt"
	"os"

	"github.com/stockade-dev/stockade/profiles/userns"
)

// LoadPool is userns.ResolvePool over the files at subuidPath and subgidPath; a
// missing file counts as empty.
func LoadPool(configured, subuidPath, subgidPath string) (userns.Pool, error) {
	u, err := readSubIDFile(subuidPath)
	if err != nil {
		return userns.Pool{}, err
	}
	g, err := readSubIDFile(subgidPath)
	if err != nil {
		return userns.Pool{}, err
	}
	return userns.ResolvePool(configured, u, g)
}

func readSubIDFile(path string) ([]userns.SubIDEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	return userns.ParseSubIDs(f, path)
}
