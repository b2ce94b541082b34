package apparmorhost

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// ErrParser wraps failures of apparmor_parser. It is an internal error:
// stockade generated the profile, so a profile the parser rejects is a bug.
var ErrParser = fmt.Errorf("apparmor_parser failed: %w", errdefs.ErrInternal)

// parserError keeps the parser's output, which says which line it rejected.
func parserError(args []string, out []byte, err error) error {
	return fmt.Errorf("%w: apparmor_parser %v: %w: %s", ErrParser, args, err, trimOutput(out))
}

// trimOutput keeps error messages bounded: the parser can be chatty.
func trimOutput(out []byte) string {
	const max = 2048
	if len(out) > max {
		out = append(out[:max:max], "…"...)
	}
	return string(out)
}
