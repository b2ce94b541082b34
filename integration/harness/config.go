package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// layout is every path and name of one private containerd, derived from its
// directory and a random suffix so that two of them (two test packages, a
// test run beside the benchmark) never share a socket, bridge or subnet.
type layout struct {
	Dir         string
	BinDir      string
	Root        string
	State       string
	Temp        string
	Address     string
	Config      string
	Log         string
	NodeConfig  string
	StockadeDir string
	LogDir      string
	RuncRoot    string
	CNIConfDir  string
	CNIBinDir   string
	IPAMDir     string
	Network     string // CNI network name
	Bridge      string // at most 15 bytes (IFNAMSIZ-1)
	Subnet      string
	PodLogDir   string
	Handler     string
	// CertsDir is CRI's registry config_path: one hosts.toml per registry
	// host, read at each pull, so a test can add a mirror after Start.
	CertsDir string
}

// cniBinDir is where Debian's containernetworking-plugins installs.
const cniBinDir = "/usr/lib/cni"

func newLayout(dir, binDir, handler string) (*layout, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random suffix: %w", err)
	}
	suffix := hex.EncodeToString(b[:3])
	return &layout{
		Dir:         dir,
		BinDir:      binDir,
		Root:        filepath.Join(dir, "root"),
		State:       filepath.Join(dir, "state"),
		Temp:        filepath.Join(dir, "tmp"),
		Address:     filepath.Join(dir, "containerd.sock"),
		Config:      filepath.Join(dir, "config.toml"),
		Log:         filepath.Join(dir, "containerd.log"),
		NodeConfig:  filepath.Join(dir, "stockade", "config.toml"),
		StockadeDir: filepath.Join(dir, "stockade", "state"),
		LogDir:      filepath.Join(dir, "stockade", "denials"),
		RuncRoot:    filepath.Join(dir, "runc"),
		CNIConfDir:  filepath.Join(dir, "cni", "net.d"),
		CNIBinDir:   cniBinDir,
		IPAMDir:     filepath.Join(dir, "cni", "ipam"),
		Network:     "stockade-test-" + suffix,
		Bridge:      "stk" + suffix,
		// 198.18.0.0/15 is reserved for benchmarking (RFC 2544): nothing real
		// lives there, and with no gateway and no masquerade no packet from a
		// test pod leaves the machine.
		Subnet:    fmt.Sprintf("198.18.%d.0/24", b[3]),
		PodLogDir: filepath.Join(dir, "pods"),
		Handler:   handler,
		CertsDir:  filepath.Join(dir, "certs.d"),
	}, nil
}

// write creates the directories and every config file.
func (l *layout) write() error {
	for _, d := range []string{l.Root, l.State, l.Temp, l.StockadeDir, l.LogDir, l.RuncRoot,
		l.CNIConfDir, l.IPAMDir, l.PodLogDir, l.CertsDir, filepath.Join(l.Dir, "fifo"), filepath.Join(l.Dir, "opt")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	files := []struct {
		path string
		tmpl *template.Template
	}{
		{l.Config, containerdConfig},
		{l.NodeConfig, nodeConfig},
		{filepath.Join(l.CNIConfDir, "10-stockade-test.conflist"), cniConfig},
	}
	for _, f := range files {
		var buf bytes.Buffer
		if err := f.tmpl.Execute(&buf, l); err != nil {
			return fmt.Errorf("render %s: %w", f.path, err)
		}
		if err := os.WriteFile(f.path, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// quote renders a string as a TOML/JSON basic string: JSON's escapes are a
// subset of TOML's.
func quote(s string) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

var funcs = template.FuncMap{"q": quote}

// containerdConfig is containerd 2.3's config (version 3). Keys were checked
// against internal/cri/config and the plugins' config structs of v2.3.7.
var containerdConfig = template.Must(template.New("containerd").Funcs(funcs).Parse(`# written by stockade integration/harness
version = 3
root = {{q .Root}}
state = {{q .State}}
temp = {{q .Temp}}
# No drop-ins from /etc/containerd/conf.d: this containerd is private.
imports = []

[grpc]
  address = {{q .Address}}

[ttrpc]
  address = {{q (print .Address ".ttrpc")}}

[debug]
  level = "info"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = {{q (print .Dir "/opt")}}

  # NRI would listen on the host-wide /var/run/nri/nri.sock.
  [plugins.'io.containerd.nri.v1.nri']
    disable = true

  [plugins.'io.containerd.image-verifier.v1.bindir']
    bin_dir = {{q (print .Dir "/image-verifier")}}

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = {{q .PauseImage}}
    # Mirrors (e.g. registry.k8s.io served from 127.0.0.1) go in CertsDir;
    # empty, it changes nothing.
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = {{q .CertsDir}}

  [plugins.'io.containerd.cri.v1.runtime']
    # This VM refuses a negative oom_score_adj even to root; CRI would set
    # -998 on sandboxes.
    restrict_oom_score_adj = true
    # Pod network namespaces go under state/, not the host-wide /var/run/netns.
    netns_mounts_under_state_dir = true

    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = {{q .Handler}}

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.stockade]
        runtime_type = "io.containerd.stockade.v1"
        pod_annotations = ["stockade.dev/*"]
        # No options block, as in contrib/containerd/stockade.toml: the
        # node config comes from $STOCKADE_CONFIG (daemon.go).

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = {{q (print .BinDir "/runc")}}
          Root = {{q .RuncRoot}}

    # Loopback needs no file here: CRI brings lo up itself (go-cni's
    # WithLoNetwork, using the loopback plugin from bin_dirs).
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = [{{q .CNIBinDir}}]
      conf_dir = {{q .CNIConfDir}}
      max_conf_num = 1
`))

// nodeConfig is the stockade node config the stockade handler is given.
var nodeConfig = template.Must(template.New("node").Funcs(funcs).Parse(`# written by stockade integration/harness; tests may rewrite it
state_dir = {{q .StockadeDir}}

[denials]
dir = {{q .LogDir}}
`))

// cniConfig is a bridge with host-local IPAM: no gateway on the bridge and no
// masquerade, so pods reach only each other and their own loopback. portmap
// serves CRI hostPort mappings (the CRI validation suite's port-mapping
// specs); pods without port mappings get no rules from it.
var cniConfig = template.Must(template.New("cni").Funcs(funcs).Parse(`{
  "cniVersion": "1.0.0",
  "name": {{q .Network}},
  "plugins": [
    {
      "type": "bridge",
      "bridge": {{q .Bridge}},
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": {{q .Subnet}}}]],
        "dataDir": {{q .IPAMDir}}
      }
    },
    {
      "type": "portmap",
      "capabilities": {"portMappings": true}
    }
  ]
}
`))

// PauseImage lets the templates name the sandbox image.
func (l *layout) PauseImage() string { return PauseImage }
