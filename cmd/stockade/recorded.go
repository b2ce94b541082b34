package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/node/fileutil"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/profiles/recorded/spo"
	"github.com/stockade-dev/stockade/profiles/seccomp"
)

// storeFlags are the flags every recorded-profile verb takes to find the
// store.
type storeFlags struct {
	store, config string
}

func (sf *storeFlags) register(flags *flag.FlagSet) {
	flags.StringVar(&sf.store, "store", "", "profile store `directory` (default: record.store_dir of the node config)")
	flags.StringVar(&sf.config, "config", "", "node config `file` (default "+config.DefaultPath+" if it exists)")
}

func (sf *storeFlags) open() (*profilestore.Store, error) {
	dir, err := storeDir(sf.config, sf.config != "", sf.store)
	if err != nil {
		return nil, err
	}
	return profilestore.Open(dir)
}

// storeDir is the profile store directory: the --store flag when set,
// otherwise the node config's record.store_dir.
func storeDir(cfgPath string, explicit bool, flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	cfg, err := config.Load(cfgPath, explicit)
	if err != nil {
		return "", err
	}
	return cfg.Record.StoreDir, nil
}

// parseInterspersed parses flags before and after positional arguments,
// as kubectl does ("show shop/web/app -o json"); flag.Parse alone stops at
// the first positional one. Everything after "--" is positional.
func parseInterspersed(flags *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := flags.Parse(args); err != nil {
			return nil, err
		}
		rest := flags.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// namespaceFlags are kubectl's -n/--namespace.
func namespaceFlags(flags *flag.FlagSet, ns *string, def string) {
	flags.StringVar(ns, "n", def, "Kubernetes `namespace`")
	flags.StringVar(ns, "namespace", def, "same as -n")
}

func isSet(flags *flag.FlagSet, names ...string) bool {
	set := false
	flags.Visit(func(f *flag.Flag) { set = set || slices.Contains(names, f.Name) })
	return set
}

// profileName reads NAME: namespace/workload/container, or
// workload/container in namespace ns (kubectl's default namespace
// unless -n says otherwise). A full name and an explicit -n must agree.
func profileName(arg, ns string, nsSet bool) (recorded.Name, error) {
	switch strings.Count(arg, "/") {
	case 1:
		return recorded.ParseName(ns + "/" + arg)
	case 2:
		n, err := recorded.ParseName(arg)
		if err == nil && nsSet && n.Namespace != ns {
			return n, fmt.Errorf("NAME %s is in namespace %q, -n says %q", arg, n.Namespace, ns)
		}
		return n, err
	}
	return recorded.Name{}, fmt.Errorf("NAME %q: want namespace/workload/container, or workload/container with -n", arg)
}

// runProfileList prints the recorded profiles in the store. It exits 0,
// 1 when the store cannot be read or holds corrupt profiles (printed as
// warnings after the good ones), 2 on usage errors.
func runProfileList(args []string, stdout, stderr io.Writer) int {
	const cmd = "stockade profile list"
	flags := flag.NewFlagSet(cmd, flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		sf     storeFlags
		ns     string
		all    bool
		format string
	)
	sf.register(flags)
	namespaceFlags(flags, &ns, "")
	flags.BoolVar(&all, "A", false, "all namespaces (the default; overrides -n)")
	flags.BoolVar(&all, "all-namespaces", false, "same as -A")
	flags.StringVar(&format, "o", "table", "output format: table or json")
	flags.StringVar(&format, "output", "table", "same as -o")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s [-n NAMESPACE | -A] [-o table|json] [--store DIR] [--config FILE]\n\n"+
			"Lists the profiles record mode stored on this node, in every namespace\n"+
			"unless -n names one. Corrupt profiles are reported on stderr.\n\n", cmd)
		flags.PrintDefaults()
	}
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return 2
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", cmd, pos[0])
		return 2
	}
	if format != "table" && format != "json" {
		fmt.Fprintf(stderr, "%s: -o %q: want table or json\n", cmd, format)
		return 2
	}
	if all {
		ns = ""
	}
	s, err := sf.open()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	profiles, errs := s.List()
	if ns != "" {
		profiles = slices.DeleteFunc(profiles, func(p *recorded.Profile) bool { return p.Name.Namespace != ns })
	}
	if format == "json" {
		if profiles == nil {
			profiles = []*recorded.Profile{}
		}
		out, err := json.MarshalIndent(profiles, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", out)
	} else if len(profiles) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tWORKLOAD\tCONTAINER\tSYSCALLS\tRUNS\tIMAGES\tLAST-RECORDED")
		for _, p := range profiles {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", p.Name.Namespace, p.Name.Workload, p.Name.Container,
				len(p.Names()), p.Runs, imageNames(p), p.LastRecorded.UTC().Format(time.RFC3339))
		}
		_ = tw.Flush()
	}
	for _, err := range errs {
		fmt.Fprintf(stderr, "%s: warning: %v\n", cmd, err)
	}
	if len(errs) > 0 {
		return 1
	}
	if len(profiles) == 0 {
		scope := ""
		if ns != "" {
			scope = fmt.Sprintf(" in namespace %q", ns)
		}
		fmt.Fprintf(stderr, "%s: no recorded profiles%s in store %s\n", cmd, scope, s.Dir)
	}
	return 0
}

// imageNames is the IMAGES column: the image names without digests (a
// table cell has no room for them; show has), each once.
func imageNames(p *recorded.Profile) string {
	var names []string
	for _, img := range p.Images {
		if !slices.Contains(names, img.Name) {
			names = append(names, img.Name)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// nameArg parses the flags of show and export (ns is their -n, read once
// the flags are parsed) and returns their NAME argument, or the exit code
// when the arguments are wrong.
func nameArg(cmd string, flags *flag.FlagSet, args []string, ns *string, stderr io.Writer) (recorded.Name, int) {
	pos, err := parseInterspersed(flags, args)
	if err != nil {
		return recorded.Name{}, 2
	}
	if len(pos) != 1 {
		flags.Usage()
		return recorded.Name{}, 2
	}
	name, err := profileName(pos[0], *ns, isSet(flags, "n", "namespace"))
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return recorded.Name{}, 2
	}
	return name, 0
}

// loadRecorded reads a profile from the store, or says on stderr why it
// cannot.
func loadRecorded(cmd string, sf *storeFlags, name recorded.Name, stderr io.Writer) *recorded.Profile {
	s, err := sf.open()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil
	}
	p, err := s.Load(name)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return nil
	}
	return p
}

// runProfileShow prints one recorded profile.
func runProfileShow(args []string, stdout, stderr io.Writer) int {
	const cmd = "stockade profile show"
	flags := flag.NewFlagSet(cmd, flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		sf     storeFlags
		ns     string
		format string
	)
	sf.register(flags)
	namespaceFlags(flags, &ns, "default")
	flags.StringVar(&format, "o", "text", "output format: text or json (the stored document)")
	flags.StringVar(&format, "output", "text", "same as -o")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s NAME [-n NAMESPACE] [-o text|json] [--store DIR] [--config FILE]\n\n"+
			"Prints a recorded profile. NAME is namespace/workload/container, or\n"+
			"workload/container in the namespace of -n.\n\n", cmd)
		flags.PrintDefaults()
	}
	name, code := nameArg(cmd, flags, args, &ns, stderr)
	if code != 0 {
		return code
	}
	if format != "text" && format != "json" {
		fmt.Fprintf(stderr, "%s: -o %q: want text or json\n", cmd, format)
		return 2
	}
	p := loadRecorded(cmd, &sf, name, stderr)
	if p == nil {
		return 1
	}
	if format == "json" {
		out, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", out)
		return 0
	}
	showRecordedText(stdout, p)
	return 0
}

func showRecordedText(w io.Writer, p *recorded.Profile) {
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	field := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	field("Name", p.Name.String())
	field("Annotation", "stockade.dev/seccomp-profile: "+p.Name.Workload+"/"+p.Name.Container)
	if len(p.Images) == 0 {
		field("Images", "-")
	}
	for i, img := range p.Images {
		k := ""
		if i == 0 {
			k = "Images:"
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, img)
	}
	field("Runs", strconv.Itoa(p.Runs))
	field("First recorded", p.FirstRecorded.UTC().Format(time.RFC3339))
	field("Last recorded", p.LastRecorded.UTC().Format(time.RFC3339))
	field("Checksum", p.Checksum)
	field("Syscalls", fmt.Sprintf("%d (all ABIs)", len(p.Names())))
	_ = tw.Flush()
	for _, a := range abiOrder(p) {
		names := p.Syscalls[a]
		fmt.Fprintf(w, "\n%s (%d):\n", a, len(names))
		line := " "
		for _, n := range names {
			if len(line)+1+len(n) > 80 {
				fmt.Fprintln(w, line)
				line = " "
			}
			line += " " + n
		}
		fmt.Fprintln(w, line)
	}
}

// abiOrder lists p's ABIs native first, as seccomp.ABIs orders them.
func abiOrder(p *recorded.Profile) []specs.Arch {
	order, _ := seccomp.ABIs(runtime.GOARCH)
	var out []specs.Arch
	for _, a := range order {
		if len(p.Syscalls[a]) > 0 {
			out = append(out, a)
		}
	}
	var rest []specs.Arch
	for a := range p.Syscalls {
		if !slices.Contains(order, a) {
			rest = append(rest, a)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// runProfileExport writes a recorded profile as an OCI seccomp profile
// (for a Kubernetes Localhost profile) or as a security-profiles-operator
// SeccompProfile object.
func runProfileExport(args []string, stdout, stderr io.Writer) int {
	const cmd = "stockade profile export"
	flags := flag.NewFlagSet(cmd, flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		sf     storeFlags
		ns     string
		format string
		output string
	)
	sf.register(flags)
	namespaceFlags(flags, &ns, "default")
	flags.StringVar(&format, "format", "oci", "`format`: oci (JSON, a Kubernetes Localhost profile) or spo (a security-profiles-operator SeccompProfile, YAML)")
	flags.StringVar(&output, "output", "", "write to `file` instead of stdout")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s NAME [-n NAMESPACE] [--format oci|spo] [--output FILE] [--store DIR] [--config FILE]\n\n"+
			"Exports a recorded profile as an allow-list: what the recordings made\n"+
			"(plus what runc needs to start a container) is allowed, anything else\n"+
			"fails with EPERM.\n\n", cmd)
		flags.PrintDefaults()
	}
	name, code := nameArg(cmd, flags, args, &ns, stderr)
	if code != 0 {
		return code
	}
	if format != "oci" && format != "spo" {
		fmt.Fprintf(stderr, "%s: --format %q: want oci or spo\n", cmd, format)
		return 2
	}
	p := loadRecorded(cmd, &sf, name, stderr)
	if p == nil {
		return 1
	}
	var (
		out []byte
		err error
	)
	if format == "oci" {
		out, err = json.MarshalIndent(p.OCI(runtime.GOARCH), "", "  ")
		out = append(out, '\n')
	} else {
		out, err = spo.Manifest(p, runtime.GOARCH)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s: %v\n", cmd, p.Name, err)
		return 1
	}
	if output == "" || output == "-" {
		_, _ = stdout.Write(out)
		return 0
	}
	if err := fileutil.WriteFile(output, out, 0o644); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: wrote %s (%s) to %s\n", cmd, p.Name, format, output)
	return 0
}
