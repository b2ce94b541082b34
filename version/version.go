// Package version holds the build's version, set by the Makefile with -ldflags.
package version

var (
	// Version is the release version.
	Version = "0.1.0-dev"
	// Revision is the git commit.
	Revision = ""
)
