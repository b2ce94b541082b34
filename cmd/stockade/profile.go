package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

func init() {
	register("profile", "print the profiles stockade would apply to a container", func(args []string) int {
		return runProfile(args, os.Stdout, os.Stderr)
	})
}

// profileKind is one "stockade profile <kind>" subcommand.
type profileKind struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

// profileKinds are the profile subcommands. Kinds that work on stored or
// recorded profiles (list, show, export) belong here too.
var profileKinds = map[string]profileKind{
	"seccomp": {"print the seccomp profile a container spec would get", runProfileSeccomp},
	"list":    {"list the profiles record mode stored on this node", runProfileList},
	"show":    {"print a recorded profile", runProfileShow},
	"export":  {"export a recorded profile as an OCI (Localhost) or SPO profile", runProfileExport},
}

func profileUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: stockade profile <kind> [flags]\n\nkinds:")
	kinds := make([]string, 0, len(profileKinds))
	for k := range profileKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-10s %s\n", k, profileKinds[k].summary)
	}
}

func runProfile(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		profileUsage(stderr)
		return 2
	}
	k, ok := profileKinds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "stockade profile: unknown kind %q\n\n", args[0])
		profileUsage(stderr)
		return 2
	}
	return k.run(args[1:], stdout, stderr)
}

// runProfileSeccomp prints, as indented JSON, the seccomp profile the shim
// would apply to the container described by an OCI spec under the node
// config: the same pipeline step, so the same decisions (mode annotation,
// unconfined namespaces, pod profile intersection).
func runProfileSeccomp(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("stockade profile seccomp", flag.ContinueOnError)
	flags.SetOutput(stderr)
	specPath := flags.String("spec", "", "the container's OCI runtime spec (`config.json`); required")
	mode := flags.String("mode", "", "generate for this `mode` (enforce or complain) instead of the node config's")
	cfgPath := flags.String("config", config.DefaultPath, "node config `file`")
	goarch := flags.String("arch", "", "generate for this `GOARCH` (amd64 or arm64) instead of this machine's")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *specPath == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: stockade profile seccomp --spec config.json [--mode enforce|complain] [--config file] [--arch amd64|arm64]")
		return 2
	}
	explicitConfig := false
	flags.Visit(func(f *flag.Flag) { explicitConfig = explicitConfig || f.Name == "config" })
	c, err := seccompContainer(*specPath, *cfgPath, explicitConfig, *mode)
	if err != nil {
		fmt.Fprintf(stderr, "stockade profile seccomp: %v\n", err)
		return 1
	}
	if _, err := (&hooks.SeccompStep{GOARCH: *goarch}).Apply(context.Background(), c); err != nil {
		fmt.Fprintf(stderr, "stockade profile seccomp: %v\n", err)
		return 1
	}
	var profile *specs.LinuxSeccomp
	if c.Spec.Linux != nil {
		profile = c.Spec.Linux.Seccomp
	}
	if profile == nil {
		fmt.Fprintf(stderr, "no seccomp profile: namespace %q is in seccomp.unconfined_namespaces\n", c.Pod.Namespace)
	} else {
		fmt.Fprintf(stderr, "profile %s, mode %s, ABIs %s\n", c.Result.SeccompProfile, c.Result.SeccompMode, abiLine(profile.Architectures, *goarch))
	}
	out, err := json.MarshalIndent(profile, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "stockade profile seccomp: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return 0
}

// abiLine names the ABIs a profile covers and what happens to calls through
// the others.
func abiLine(covered []specs.Arch, goarch string) string {
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	names := make([]string, 0, len(covered))
	for _, a := range covered {
		names = append(names, strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_")))
	}
	all, _ := seccomp.ABIs(goarch)
	var off []string
	for _, a := range all {
		if !slices.Contains(covered, a) {
			off = append(off, strings.ToLower(strings.TrimPrefix(string(a), "SCMP_ARCH_")))
		}
	}
	line := strings.Join(names, ", ")
	if len(off) > 0 {
		line += " (" + strings.Join(off, ", ") + " off: their calls are killed with SIGSYS)"
	}
	return line
}

// seccompContainer builds the pipeline's view of the container in spec
// under the node config, with the mode overridden when mode is set.
func seccompContainer(specPath, cfgPath string, explicitConfig bool, mode string) (*hooks.Container, error) {
	cfg, err := config.Load(cfgPath, explicitConfig)
	if err != nil {
		return nil, err
	}
	if mode != "" {
		cfg.Seccomp.Mode = mode
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("--mode: %w", err)
		}
	}
	data, err := os.ReadFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("spec %s: %w", specPath, err)
	}
	if spec.Process == nil && spec.Linux == nil {
		return nil, errors.New("spec " + specPath + " has neither process nor linux: not an OCI runtime spec")
	}
	ann, err := hooks.ParseAnnotations(spec.Annotations)
	if err != nil {
		return nil, err
	}
	const id = "stockade-profile"
	return &hooks.Container{ID: id, Spec: &spec, Pod: cri.PodFromAnnotations(id, spec.Annotations), Annotations: ann, Node: cfg}, nil
}
