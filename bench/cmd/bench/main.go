// Command bench compares stockade with containerd-shim-runc-v2 + runc on a
// private containerd and writes latest.md, latest.json and latest.png.
//
//	bench -n 100 -out bench/results    # the full run (make bench)
//	bench -smoke -out bin/bench-smoke  # under a minute (make bench-smoke, CI)
//
// It needs root and the binaries and images of `make deps build images`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stockade-dev/stockade/bench"
)

func main() {
	// A seccomp-load child of the start-phases measurement: load, report,
	// exit, before anything else runs.
	if child, err := bench.RunSeccompLoadChild(); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench seccomp child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	n := flag.Int("n", 100, "iterations per runtime for the sequential latency metrics")
	smoke := flag.Bool("smoke", false, "a tiny run (< 60 s) that checks the benchmark works")
	out := flag.String("out", "bench/results", "directory for latest.md, latest.json and latest.png")
	quiet := flag.Bool("q", false, "no progress on stderr")
	only := flag.String("only", "", "run only these comma-separated metric groups: "+strings.Join(bench.StepNames(), ", "))
	flag.Parse()

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (it runs a private containerd)")
		os.Exit(1)
	}
	// Interrupting cancels the measurements; Run still tears down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	logf := func(format string, args ...any) {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "[%6.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
		}
	}
	res, err := bench.Run(ctx, bench.Config{N: *n, Smoke: *smoke, Logf: logf, Only: splitList(*only)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(res.Markdown())
	if err := res.WriteFiles(*out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s/latest.{md,json,png}\n", *out)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
