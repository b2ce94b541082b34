package apparmor

import "fmt"

// This package may not import containerd's errdefs (profiles/* depend only
// on the runtime spec, libseccomp and x/sys), so its errors carry their kind
// the way errdefs recognises without an import: errdefs.IsInvalidArgument
// reports true for any error with an InvalidParameter method.

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
