package main

import (
	"os"

	"github.com/stockade-dev/stockade/version"
)

func init() {
	register("version", "print stockade's version and VCS revision", func([]string) int {
		version.Print(os.Stdout, "stockade")
		return 0
	})
}
