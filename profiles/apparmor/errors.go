package apparmor

import "fmt"

// This package may not import containerd's errdefs (profiles/* depend only
// on the runtime spec, libseccomp and x/sys), so its errors carry their kind
// the way errdefs recognises without an import: errdefs.IsInvalidArgument
// reports true for any error with an InvalidParameter method, IsInternal for
// one with a System method.

// InvalidError reports spec or policy content that cannot be rendered into
// a safe profile. It is an invalid-argument error.
type InvalidError struct {
	// Field names what was wrong, e.g. "mount destination".
	Field string
	// Value is the offending value as given.
	Value string
	// Reason says what is wrong with it.
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("apparmor: %s %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("apparmor: %s %q %s", e.Field, e.Value, e.Reason)
}

// InvalidParameter marks the error as errdefs' invalid argument.
func (*InvalidError) InvalidParameter() {}

// ErrParser wraps failures of apparmor_parser. It is an internal error:
// stockade generated the profile, so a profile the parser rejects is a bug.
var ErrParser error = internalError("apparmor_parser failed")

type internalError string

func (e internalError) Error() string { return string(e) }
func (internalError) System()         {}

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
