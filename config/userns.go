package config

// UserNS is the [userns] section. Owned by the user-namespace feature.
type UserNS struct {
	// Enabled turns per-pod user-namespace remapping on.
	Enabled bool `toml:"enabled"`
}

func defaultUserNS() UserNS { return UserNS{Enabled: true} }

func (u *UserNS) validate() error { return nil }
