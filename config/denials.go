package config

// Denials is the [denials] section. Owned by the denial-streaming feature.
type Denials struct {
	// Enabled streams seccomp denials to the sink.
	Enabled bool `toml:"enabled"`
	// Dir is the root of the per-pod JSON-lines sink.
	Dir string `toml:"dir"`
}

func defaultDenials() Denials { return Denials{Enabled: true, Dir: "/var/log/stockade"} }

func (d *Denials) validate() error { return nil }
