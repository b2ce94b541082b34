package config

// AppArmor is the [apparmor] section. Owned by the AppArmor feature.
type AppArmor struct {
	// Required makes container creation fail on hosts without AppArmor.
	Required bool `toml:"required"`
}

func defaultAppArmor() AppArmor { return AppArmor{} }

func (a *AppArmor) validate() error { return nil }
