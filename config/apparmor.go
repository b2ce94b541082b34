package config

import (
	"fmt"
	"path/filepath"
)

// AppArmor is the [apparmor] section. Owned by the AppArmor feature.
//
// Where the host kernel has AppArmor, every container gets a profile
// generated from its spec; its mode (enforce or complain) follows the
// container's seccomp mode, so one switch moves a pod between the two.
type AppArmor struct {
	// Required makes container creation fail on hosts without AppArmor,
	// instead of running the container without a profile.
	Required bool `toml:"required"`
	// AllowLocalhostProfiles lets a pod name a profile already loaded on
	// the node (Kubernetes' Localhost profile type) instead of the
	// generated one. Off by default: such a profile can be weaker.
	AllowLocalhostProfiles bool `toml:"allow_localhost_profiles"`
	// CacheDir keeps profile sources and apparmor_parser's compiled cache,
	// so starting a container with an already-seen profile skips
	// compilation. "" means <state_dir>/apparmor/cache.
	CacheDir string `toml:"cache_dir"`
	// ParserPath is apparmor_parser's path. "" searches PATH, then
	// /usr/sbin and /sbin (a shim started by containerd may lack /sbin in
	// its PATH).
	ParserPath string `toml:"parser_path"`
}

func defaultAppArmor() AppArmor { return AppArmor{} }

func (a *AppArmor) validate() error {
	for _, k := range []struct{ key, val string }{
		{"cache_dir", a.CacheDir},
		{"parser_path", a.ParserPath},
	} {
		if k.val != "" && !filepath.IsAbs(k.val) {
			return fmt.Errorf("key apparmor.%s: must be an absolute path, got %q", k.key, k.val)
		}
		if k.val != "" && filepath.Clean(k.val) != k.val {
			return fmt.Errorf("key apparmor.%s: must be a clean path (no //, . or ..), got %q", k.key, k.val)
		}
	}
	return nil
}

// AppArmorStateDir is where the AppArmor loader counts a profile's users:
// one holder file per container, shared by every shim on the node.
func (c *Config) AppArmorStateDir() string {
	return filepath.Join(c.StateDir, "apparmor", "holders")
}

// AppArmorCacheDir is apparmor.cache_dir, or its default under state_dir.
func (c *Config) AppArmorCacheDir() string {
	if c.AppArmor.CacheDir != "" {
		return c.AppArmor.CacheDir
	}
	return filepath.Join(c.StateDir, "apparmor", "cache")
}
