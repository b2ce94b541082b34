// Package config is the stockade node configuration: one TOML file per node,
// at DefaultPath unless $STOCKADE_CONFIG or the runtime option ConfigPath
// names another. Every section has
// defaults that apply when the file (or the key) is absent; unknown keys are
// errors, so a typo cannot silently weaken isolation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
)

// DefaultPath is where the node config lives when containerd names none.
const DefaultPath = "/etc/stockade/config.toml"

// PathEnv names a node config in the environment of containerd (which hands
// its environment to every shim) and of the CLI. It exists because a
// runtime options block cannot carry the path for every pod: containerd
// 2.3's client converts a runtime's options into runc's options type for
// user-namespaced pods and fails on any other type (see README).
const PathEnv = "STOCKADE_CONFIG"

// Config is the node configuration. Each section lives in its own file.
type Config struct {
	// StateDir holds stockade's cross-shim state (ID range leases, profile cache).
	StateDir string `toml:"state_dir"`

	Seccomp  Seccomp  `toml:"seccomp"`
	AppArmor AppArmor `toml:"apparmor"`
	UserNS   UserNS   `toml:"userns"`
	Denials  Denials  `toml:"denials"`
	Record   Record   `toml:"record"`

	// Path is the file this config came from ("" for built-in defaults).
	Path string `toml:"-"`
}

// Default returns the configuration used when no file exists.
func Default() *Config {
	return &Config{
		StateDir: "/var/lib/stockade",
		Seccomp:  defaultSeccomp(),
		AppArmor: defaultAppArmor(),
		UserNS:   defaultUserNS(),
		Denials:  defaultDenials(),
		Record:   defaultRecord(),
	}
}

// Load reads the node config at path; an empty path means $STOCKADE_CONFIG,
// or DefaultPath when that is unset. If explicit is false and the file does
// not exist, the defaults apply; a file that was named explicitly (by the
// caller or the environment) must exist. Errors name the file, and where the
// decoder knows them, the line and key.
func Load(path string, explicit bool) (*Config, error) {
	if path == "" {
		if env := os.Getenv(PathEnv); env != "" {
			path, explicit = env, true
		} else {
			path = DefaultPath
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return Default(), nil
		}
		return nil, fmt.Errorf("node config %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("node config %s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// Parse decodes and validates a node config document over the defaults.
func Parse(data []byte) (*Config, error) {
	c := Default()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%s: %w", describeDecodeError(err), errdefs.ErrInvalidArgument)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return c, nil
}

// Validate checks every section; the error names the offending key.
func (c *Config) Validate() error {
	if c.StateDir == "" || !strings.HasPrefix(c.StateDir, "/") {
		return fmt.Errorf("key state_dir: must be an absolute path, got %q", c.StateDir)
	}
	for _, v := range []func() error{c.Seccomp.validate, c.AppArmor.validate, c.UserNS.validate, c.Denials.validate, c.Record.validate} {
		if err := v(); err != nil {
			return err
		}
	}
	return nil
}

func describeDecodeError(err error) string {
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Sprintf("line %d, column %d, key %s: %s", row, col, key, de.Error())
		}
		return fmt.Sprintf("line %d, column %d: %s", row, col, de.Error())
	}
	var sme *toml.StrictMissingError
	if errors.As(err, &sme) && len(sme.Errors) > 0 {
		de := sme.Errors[0]
		row, col := de.Position()
		return fmt.Sprintf("line %d, column %d, unknown key %s", row, col, strings.Join(de.Key(), "."))
	}
	return err.Error()
}
