package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/log"

	"github.com/stockade-dev/stockade/agent"
	"github.com/stockade-dev/stockade/config"
)

func init() {
	register("agent", "run the node agent: metrics, Events and cluster-wide recorded profiles (needs the Kubernetes API)", func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runAgent(ctx, args, os.Stderr)
	})
}

// runAgent parses the flags and runs the agent until ctx ends. It exits 0
// on a signal, 1 when the agent cannot start, 2 on usage errors.
func runAgent(ctx context.Context, args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("stockade agent", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var cfg agent.Config
	flags.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig `file` (default: the in-cluster ServiceAccount)")
	flags.StringVar(&cfg.Node, "node", os.Getenv("NODE_NAME"), "this node's `name` (default $NODE_NAME)")
	flags.StringVar(&cfg.Namespace, "namespace", "", "only this `namespace`'s denials and profiles (default: all)")
	flags.StringVar(&cfg.MetricsAddr, "metrics-addr", ":9745", "`address` of /metrics and /healthz (\"\" for none)")
	flags.StringVar(&cfg.StateDir, "state-dir", "/var/lib/stockade/agent", "`directory` of the agent's read positions and sync state")
	flags.DurationVar(&cfg.PollInterval, "poll-interval", 2*time.Second, "how often the denial sink is read")
	flags.DurationVar(&cfg.SyncInterval, "sync-interval", 15*time.Second, "how often recorded profiles are synchronised with the cluster")
	flags.BoolVar(&cfg.NoEvents, "no-events", false, "send no Kubernetes Events")
	flags.BoolVar(&cfg.NoProfiles, "no-profiles", false, "do not synchronise recorded profiles")
	cfgPath := flags.String("config", "", "node config `file` (default "+config.DefaultPath+" if it exists)")
	denialsDir := flags.String("denials-dir", "", "denial sink `directory` (default: denials.dir of the node config)")
	storeDir := flags.String("store-dir", "", "profile store `directory` (default: record.store_dir of the node config)")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: stockade agent [flags]\n\n"+
			"Runs on every node (contrib/kubernetes/agent): serves Prometheus metrics of\n"+
			"the node's denials, puts an Event on a pod for its denials, and merges the\n"+
			"node's recorded profiles into RecordedSeccompProfile objects, whose merged\n"+
			"profile it writes back into the node's store.\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "stockade agent: unexpected argument %q\n", flags.Arg(0))
		return 2
	}
	if *denialsDir == "" || *storeDir == "" {
		nc, err := config.Load(*cfgPath, *cfgPath != "")
		if err != nil {
			fmt.Fprintf(stderr, "stockade agent: %v\n", err)
			return 1
		}
		if *denialsDir == "" {
			*denialsDir = nc.Denials.Dir
		}
		if *storeDir == "" {
			*storeDir = nc.Record.StoreDir
		}
	}
	cfg.DenialsDir, cfg.StoreDir = *denialsDir, *storeDir
	if err := agent.Run(ctx, cfg); err != nil {
		log.G(ctx).WithError(err).Error("stockade agent")
		fmt.Fprintf(stderr, "stockade agent: %v\n", err)
		return 1
	}
	return 0
}
