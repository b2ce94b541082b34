package container

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// decodeSpec decodes an OCI spec; errors say where the document is wrong
// (byte offset or field) and are of kind InvalidArgument.
func decodeSpec(name string, data []byte) (*specs.Spec, error) {
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%s: malformed JSON at byte %d: %v: %w", name, se.Offset, se, errdefs.ErrInvalidArgument)
		case errors.As(err, &te):
			return nil, fmt.Errorf("%s: field %s: cannot use JSON %s as %s: %w", name, te.Field, te.Value, te.Type, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("%s: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	if s.Process == nil {
		return nil, fmt.Errorf("%s: field process: missing: %w", name, errdefs.ErrInvalidArgument)
	}
	if s.Root == nil || s.Root.Path == "" {
		return nil, fmt.Errorf("%s: field root.path: missing: %w", name, errdefs.ErrInvalidArgument)
	}
	if s.Linux == nil {
		return nil, fmt.Errorf("%s: field linux: missing: %w", name, errdefs.ErrInvalidArgument)
	}
	return &s, nil
}
