// Package agent is stockade's node agent (`stockade agent`): it reads the
// node's denial sink and profile store, which the shims write, and makes
// them cluster objects through the Kubernetes API: Prometheus metrics,
// Events on the pods, and RecordedSeccompProfile objects merged from every
// node's recordings and written back into every node's store. The shims
// never talk to the API server; a node without the agent keeps its local
// behaviour, and an agent that cannot reach the API server keeps serving
// metrics and catches up when it can.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/log"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stockade-dev/stockade/agent/events"
	"github.com/stockade-dev/stockade/agent/metrics"
	"github.com/stockade-dev/stockade/agent/profiles"
	"github.com/stockade-dev/stockade/agent/sink"
	"github.com/stockade-dev/stockade/node/profilestore"
)

// Config is what the agent needs; cmd/stockade fills it from flags and the
// node config.
type Config struct {
	// Kubeconfig is a kubeconfig file; "" means the in-cluster config of
	// the DaemonSet's ServiceAccount.
	Kubeconfig string
	// Node is this node's name (the Pod's spec.nodeName).
	Node string
	// DenialsDir is the denial sink (denials.dir); StoreDir the profile
	// store (record.store_dir); StateDir where the agent keeps its read
	// positions and sync memory.
	DenialsDir, StoreDir, StateDir string
	// Namespace limits events and profiles to one namespace ("" for all).
	Namespace string
	// MetricsAddr is where /metrics and /healthz listen ("" for none).
	MetricsAddr string
	// PollInterval is how often the sink is read; SyncInterval how often
	// profiles are synchronised.
	PollInterval, SyncInterval time.Duration
	// NoProfiles and NoEvents turn those parts off.
	NoProfiles, NoEvents bool
	// Ready, when set, receives the metrics listener's address once it
	// listens (tests).
	Ready func(addr string)
}

// Run runs the agent until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Node == "" {
		return errors.New("agent: no node name (set --node or NODE_NAME)")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 15 * time.Second
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("agent state dir: %w", err)
	}
	logger := log.G(ctx).WithField("node", cfg.Node)
	ctx = log.WithLogger(ctx, logger)

	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("agent: kubernetes client config: %w", err)
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.UserAgent = "stockade-agent/" + cfg.Node
	restCfg.Timeout = 30 * time.Second
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("agent: kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("agent: kubernetes client: %w", err)
	}

	m := metrics.New(cfg.Node)
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("agent: metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.WithError(err).Error("metrics server")
			}
		}()
		defer srv.Close()
		logger.WithField("addr", ln.Addr().String()).Info("serving metrics")
		if cfg.Ready != nil {
			cfg.Ready(ln.Addr().String())
		}
	}

	var rec *events.Recorder
	if !cfg.NoEvents {
		rec = &events.Recorder{Client: kube, Node: cfg.Node, Observer: m}
	}
	tailer := &sink.Tailer{Dir: cfg.DenialsDir, StatePath: filepath.Join(cfg.StateDir, "sink.json")}
	h := &handler{m: m, rec: rec, ns: cfg.Namespace, ctx: ctx}

	var syncer *profiles.Syncer
	if !cfg.NoProfiles {
		// The store may not exist yet on a node that never recorded; the
		// agent makes it, since cluster profiles are enforced here too.
		if err := os.MkdirAll(cfg.StoreDir, 0o755); err != nil {
			return fmt.Errorf("agent: profile store: %w", err)
		}
		store, err := profilestore.Open(cfg.StoreDir)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		syncer = &profiles.Syncer{Client: dyn, Store: store, Node: cfg.Node, Namespace: cfg.Namespace,
			Observer: m, StatePath: filepath.Join(cfg.StateDir, "profiles.json")}
	}

	logger.WithField("denials", cfg.DenialsDir).WithField("store", cfg.StoreDir).Info("stockade agent started")
	poll := time.NewTicker(cfg.PollInterval)
	defer poll.Stop()
	syncT := time.NewTicker(cfg.SyncInterval)
	defer syncT.Stop()
	pollOnce := func() {
		h.logged = 0
		if err := tailer.Poll(h); err != nil {
			logger.WithError(err).Warn("reading the denial sink")
			m.Error("sink")
		}
		if rec != nil {
			rec.Flush(ctx)
		}
	}
	syncOnce := func() {
		if syncer == nil {
			return
		}
		if err := syncer.Sync(ctx); err != nil {
			logger.WithError(err).Warn("synchronising recorded profiles (retried at the next round)")
		}
	}
	pollOnce()
	syncOnce()
	for {
		select {
		case <-ctx.Done():
			// One last read, so that the persisted positions cover what
			// was counted.
			pollOnce()
			logger.Info("stockade agent stopped")
			return nil
		case <-poll.C:
			pollOnce()
		case <-syncT.C:
			syncOnce()
		}
	}
}

// maxLoggedBadLines bounds the log lines of one poll about bad sink lines;
// the metric counts all of them.
const maxLoggedBadLines = 10

type handler struct {
	m      *metrics.Metrics
	rec    *events.Recorder
	ns     string
	ctx    context.Context
	logged int
}

func (h *handler) Record(r *sink.Record) {
	if h.ns != "" && r.Namespace != h.ns {
		return
	}
	h.m.Record(r)
	if h.rec != nil {
		h.rec.Observe(r)
	}
}

func (h *handler) PodGone(namespace, pod string) { h.m.PodGone(namespace, pod) }

func (h *handler) BadLine(path, reason string, err error) {
	h.m.BadLine(reason)
	if h.logged < maxLoggedBadLines {
		h.logged++
		log.G(h.ctx).WithError(err).WithField("file", path).Warn("denial sink: line skipped")
	}
}
