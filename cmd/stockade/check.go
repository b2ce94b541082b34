package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/hostcheck"
)

func init() {
	register("check", "report what this node supports and what stockade will do", func(args []string) int {
		return runCheck(args, os.Stdout, os.Stderr, hostcheck.Real())
	})
}

// checkOutput is the JSON document of `stockade check -o json`.
type checkOutput struct {
	// Config is the node config file read, "" for built-in defaults.
	Config string `json:"config"`
	hostcheck.Report
}

// runCheck probes the host with probes and prints the report. It exits 0
// when everything the node config needs is present, 1 when something
// required is missing (or the config cannot be read), 2 on usage errors.
func runCheck(args []string, stdout, stderr io.Writer, probes hostcheck.Probes) int {
	fs := flag.NewFlagSet("stockade check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("o", "table", "output format: table or json")
	cfgPath := fs.String("config", "", "node config `file` (default "+config.DefaultPath+" if it exists)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: stockade check [-o table|json] [--config FILE]\n\n"+
			"Reports what this node supports (seccomp, AppArmor, user namespaces,\n"+
			"idmapped mounts, cgroups, audit) and what stockade will do with it.\n"+
			"Exits 1 if something the node config requires is missing.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stockade check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "stockade check: -o %q: want table or json\n", *format)
		return 2
	}
	// A config named on the command line must exist; the default one may
	// be absent, and then the defaults apply, as in the shim.
	cfg, err := config.Load(*cfgPath, *cfgPath != "")
	if err != nil {
		fmt.Fprintf(stderr, "stockade check: %v\n", err)
		return 1
	}

	out := checkOutput{Config: cfg.Path, Report: hostcheck.Run(probes, cfg)}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "stockade check: %v\n", err)
			return 1
		}
	} else {
		printTable(stdout, out)
	}
	if !out.OK {
		return 1
	}
	return 0
}

func printTable(w io.Writer, out checkOutput) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tSTATE\tNEED\tDETAIL\tSTOCKADE WILL")
	for _, c := range out.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Feature, c.State, c.Need, oneLine(c.Detail), oneLine(c.Action))
	}
	tw.Flush()

	cfg := out.Config
	if cfg == "" {
		cfg = "built-in defaults (" + config.DefaultPath + " not found)"
	}
	fmt.Fprintf(w, "\nconfig: %s\n", cfg)
	var missing []string
	for _, c := range out.Checks {
		if c.Failed() {
			missing = append(missing, c.Feature)
		}
	}
	if len(missing) == 0 {
		fmt.Fprintln(w, "result: ok, everything this configuration needs is present")
		return
	}
	fmt.Fprintf(w, "result: missing what this configuration requires: %s\n", strings.Join(missing, ", "))
}

// oneLine keeps a probe's error text from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
