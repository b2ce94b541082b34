// Package e2e runs a private single-node Kubernetes (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet) against the harness's
// private containerd, with stockade and runc as RuntimeClasses, and drives
// it with kubectl as a user would.
//
// Everything is private to the run: certificates made fresh, the control
// plane on 127.0.0.1, the node's address on the harness's CNI bridge (which
// has no gateway and no masquerade), the kubelet in its own cgroup root and
// its own root directory. What a run leaves on the host is named by files
// in a fixed directory, so the next run cleans up after one that was killed.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// Ports on 127.0.0.1 (the kubelet listens on the node address). Fixed and
// away from the usual ones, so a cluster left by someone else on the
// default ports does not answer in our place.
const (
	etcdClientPort = 23790
	etcdPeerPort   = 23800
	apiserverPort  = 16443
	kubeletPort    = 10350
	kubeletHealthz = 10348
)

// NodeName is the name the kubelet registers.
const NodeName = "stockade-e2e"

// DefaultDir is the fixed directory of the cluster's state.
var DefaultDir = filepath.Join(os.TempDir(), "stockade-e2e")

// Options configure Start.
type Options struct {
	Dir     string // state directory; DefaultDir when empty
	K8sBin  string // kube-apiserver, kubelet, ..., etcd
	RepoDir string // the repository (contrib/ manifests)
	Logf    func(format string, args ...any)
}

// Cluster is one running cluster.
type Cluster struct {
	Dir        string
	Env        *harness.Env // the private containerd
	Kubeconfig string       // admin (system:masters)
	K8sBin     string
	NodeIP     string
	procs      []*component
	logf       func(string, ...any)
	pki        *pki // for a second node's certificates
}

type component struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	log     string
	stopped atomic.Bool
}

// Start cleans whatever an earlier run left in o.Dir, then starts the
// private containerd and the cluster, and returns when the node is Ready and
// the RuntimeClasses exist. On error everything is torn down again.
func Start(ctx context.Context, o Options) (_ *Cluster, retErr error) {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if err := cleanHost(o.Dir); err != nil {
		return nil, fmt.Errorf("clean up after an earlier run in %s: %w", o.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o711); err != nil {
		return nil, err
	}
	if err := os.Chmod(o.Dir, 0o711); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: o.Dir, K8sBin: o.K8sBin, logf: o.Logf,
		Kubeconfig: filepath.Join(o.Dir, "admin.kubeconfig")}
	defer func() {
		if retErr != nil {
			retErr = fmt.Errorf("%w\n%s", retErr, c.LogTails(25))
			_ = c.Stop()
		}
	}()

	env, err := harness.Start(ctx, harness.Options{Handler: harness.HandlerStockade, Logf: o.Logf})
	if err != nil {
		return nil, fmt.Errorf("private containerd: %w", err)
	}
	c.Env = env
	if err := writeFileSync(filepath.Join(o.Dir, harnessDirFile), env.Dir); err != nil {
		return nil, err
	}
	if err := enableRecord(env); err != nil {
		return nil, err
	}
	if err := c.nodeAddress(); err != nil {
		return nil, err
	}
	if err := makeCgroups(); err != nil {
		return nil, err
	}
	if err := saveSysctls(o.Dir); err != nil {
		return nil, err
	}
	if err := recordMissingDirs(o.Dir); err != nil {
		return nil, err
	}
	p, err := newPKI(filepath.Join(o.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	c.pki = p
	if err := c.startControlPlane(ctx, p); err != nil {
		return nil, err
	}
	if err := c.startKubelet(ctx, p); err != nil {
		return nil, err
	}
	if err := c.install(ctx, o.RepoDir); err != nil {
		return nil, err
	}
	return c, nil
}

// enableRecord lets pods ask for record mode, with the profile store in the
// harness's directory. Shims read the node config when they start, so this
// holds for every pod of the run; without the annotation nothing changes.
func enableRecord(env *harness.Env) error {
	// The shim refuses to record into a store that does not exist, as it
	// would on a node where the installer did not create it.
	if err := os.MkdirAll(ProfileStore(env), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(env.NodeConfig, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("node config: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n[record]\nallow = true\nstore_dir = %q\n", ProfileStore(env))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ProfileStore is record mode's profile store.
func ProfileStore(env *harness.Env) string {
	return filepath.Join(env.Dir, "stockade", "profiles")
}

// SeccompDir is where the kubelet looks up Localhost seccomp profiles.
func (c *Cluster) SeccompDir() string { return filepath.Join(c.Dir, "kubelet", "seccomp") }

// nodeAddress gives the node an address: the kubelet refuses a loopback
// node IP, and HTTP probes go from the host to pod addresses. The harness's
// CNI bridge (created here before CNI would) gets the first address of the
// pod subnet, which host-local IPAM reserves as the gateway and never hands
// out; with no default route through it and no masquerade, nothing leaves
// the machine.
func (c *Cluster) nodeAddress() error {
	ip, err := bridgeAddress(c.Env, c.Dir)
	if err != nil {
		return err
	}
	c.NodeIP = ip
	return nil
}

// bridgeAddress creates env's CNI bridge with the first address of its pod
// subnet (see nodeAddress) and returns that address, after noting the
// bridge and network names in stateDir for cleanHost.
func bridgeAddress(env *harness.Env, stateDir string) (string, error) {
	conf, err := os.ReadFile(filepath.Join(env.Dir, "cni", "net.d", "10-stockade-test.conflist"))
	if err != nil {
		return "", fmt.Errorf("read the harness's CNI config: %w", err)
	}
	var nc struct {
		Name    string `json:"name"`
		Plugins []struct {
			Bridge string `json:"bridge"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &nc); err != nil || len(nc.Plugins) == 0 || nc.Plugins[0].Bridge == "" {
		return "", fmt.Errorf("harness CNI config has no bridge (%v): %s", err, conf)
	}
	bridge := nc.Plugins[0].Bridge
	if err := writeFileSync(filepath.Join(stateDir, bridgeFile), bridge); err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(stateDir, networkFile), nc.Name); err != nil {
		return "", err
	}
	ip, subnet, err := net.ParseCIDR(env.PodSubnet())
	if err != nil {
		return "", fmt.Errorf("pod subnet: %w", err)
	}
	ip = ip.To4()
	ip[3] = 1
	ones, _ := subnet.Mask.Size()
	for _, args := range [][]string{
		{"link", "add", bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", ip, ones), "dev", bridge},
		{"link", "set", bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return ip.String(), nil
}

func (c *Cluster) startControlPlane(ctx context.Context, p *pki) error {
	host := "127.0.0.1"
	etcdURL := fmt.Sprintf("http://%s:%d", host, etcdClientPort)
	peerURL := fmt.Sprintf("http://%s:%d", host, etcdPeerPort)
	if err := c.start("etcd", filepath.Join(c.K8sBin, "etcd"),
		"--name=e2e",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL,
		// The data dies with the run; fsync only costs time.
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "etcd", etcdURL+"/health", nil, 30*time.Second); err != nil {
		return err
	}

	apiCert, apiKey, err := p.issue("apiserver", "kube-apiserver", nil,
		"127.0.0.1", c.NodeIP, "10.96.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if err != nil {
		return err
	}
	kcCert, kcKey, err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return err
	}
	saPub, saKey, err := p.keyPair("sa")
	if err != nil {
		return err
	}
	adminCert, adminKey, err := p.issue("admin", "e2e-admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", apiserverPort)
	if err := writeKubeconfig(c.Kubeconfig, server, p.CA(), adminCert, adminKey); err != nil {
		return err
	}
	if err := c.start("kube-apiserver", filepath.Join(c.K8sBin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiserverPort),
		// The kubernetes Service's endpoint must not be a loopback
		// address; nothing in the tests uses it.
		"--advertise-address="+c.NodeIP,
		"--cert-dir="+filepath.Join(c.Dir, "apiserver"),
		"--tls-cert-file="+apiCert, "--tls-private-key-file="+apiKey,
		"--client-ca-file="+p.CA(),
		"--kubelet-client-certificate="+kcCert, "--kubelet-client-key="+kcKey,
		"--kubelet-certificate-authority="+p.CA(),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--profiling=false",
	); err != nil {
		return err
	}
	tlsConf, err := clientTLS(p.CA(), adminCert, adminKey)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, "kube-apiserver", server+"/readyz", tlsConf, 90*time.Second); err != nil {
		return err
	}

	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		args := []string{
			"--kubeconfig=" + c.Kubeconfig,
			"--leader-elect=false",
			// No serving endpoint: nothing scrapes them, and a fixed port
			// could collide.
			"--secure-port=0",
			"--profiling=false",
		}
		if name == "kube-controller-manager" {
			args = append(args,
				"--service-account-private-key-file="+saKey,
				"--root-ca-file="+p.CA(),
				"--use-service-account-credentials=false",
				"--cluster-name=stockade-e2e",
				// A one-node cluster never loses its node: no taints
				// from a kubelet slow under load.
				"--node-monitor-grace-period=2m",
			)
		}
		if err := c.start(name, filepath.Join(c.K8sBin, name), args...); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) startKubelet(ctx context.Context, p *pki) error {
	comp, err := c.startKubeletOn(ctx, p, kubeletNode{
		name: NodeName, ip: c.NodeIP, dir: c.Dir, env: c.Env,
		port: kubeletPort, healthz: kubeletHealthz, cgroupRoot: "/" + cgroupName,
	})
	if comp != nil {
		c.procs = append(c.procs, comp)
	}
	return err
}

// kubeletNode is what differs between the kubelets of two nodes on one
// machine: the name, the address, the state directory, the containerd, the
// ports and the cgroup root.
type kubeletNode struct {
	name, ip, dir string
	env           *harness.Env
	port, healthz int
	cgroupRoot    string
	extraArgs     []string
	// logName names the component's log (logs/<logName>.log).
	logName string
}

// startKubeletOn starts a kubelet for n and waits until its node is Ready.
// The component is returned also when it started but did not get Ready,
// so the caller stops it.
func (c *Cluster) startKubeletOn(ctx context.Context, p *pki, n kubeletNode) (*component, error) {
	if n.logName == "" {
		n.logName = "kubelet"
	}
	cert, key, err := p.issue(n.logName, "system:node:"+n.name, nil, n.ip, "127.0.0.1", n.name)
	if err != nil {
		return nil, err
	}
	clientCert, clientKey, err := p.issue(n.logName+"-client", "system:node:"+n.name, []string{"system:nodes"})
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(n.dir, "kubelet.kubeconfig")
	if err := writeKubeconfig(kubeconfig, fmt.Sprintf("https://127.0.0.1:%d", apiserverPort), p.CA(), clientCert, clientKey); err != nil {
		return nil, err
	}
	// Pods get no name server: nothing in the tests resolves names, and the
	// host's resolver is no business of theirs.
	resolv := filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("options ndots:1\n"), 0o644); err != nil {
		return nil, err
	}
	podLogs := filepath.Join(n.dir, "pod-logs")
	if err := os.MkdirAll(podLogs, 0o755); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %q
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
tlsCertFile: %q
tlsPrivateKeyFile: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %q}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://%s
# This machine is cgroup v1 hybrid; the kubelet refuses v1 unless told.
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
# A shared test machine: evict nothing because a disk is 90%% full.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
  imagefs.inodesFree: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: %q
resolvConf: %q
serializeImagePulls: false
syncFrequency: 10s
`, n.ip, n.port, n.healthz, cert, key, p.CA(), n.env.Address, n.cgroupRoot, podLogs, resolv)
	configFile := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		return nil, err
	}
	comp, err := c.spawn(n.logName, filepath.Join(c.K8sBin, "kubelet"), append([]string{
		"--config=" + configFile,
		"--kubeconfig=" + kubeconfig,
		"--root-dir=" + filepath.Join(n.dir, "kubelet"),
		"--hostname-override=" + n.name,
		"--node-ip=" + n.ip,
		"--v=1",
	}, n.extraArgs...)...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := c.kubectl(ctx, "get", "node", n.name,
			"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && strings.TrimSpace(out) == "True" {
			return comp, nil
		}
		select {
		case <-comp.exited:
			return comp, fmt.Errorf("%s exited: %v\n%s", comp.name, comp.waitErr, tail(comp.log, 30))
		default:
		}
		if err := c.exitedErr(); err != nil {
			return comp, err
		}
		if time.Now().After(deadline) {
			return comp, fmt.Errorf("node %s not Ready after 2m (last: %q, %v)", n.name, out, err)
		}
		time.Sleep(time.Second)
	}
}

// install does what an operator does to offer stockade on the node: the
// node label the installer sets once the handler is configured, contrib's
// RuntimeClass as shipped, and a runc RuntimeClass as the baseline.
func (c *Cluster) install(ctx context.Context, repoDir string) error {
	if _, err := c.kubectl(ctx, "label", "node", NodeName, "stockade.dev/enabled=true", "--overwrite"); err != nil {
		return err
	}
	if _, err := c.kubectl(ctx, "apply", "-f", filepath.Join(repoDir, "contrib", "kubernetes", "runtimeclass.yaml")); err != nil {
		return err
	}
	runc := filepath.Join(c.Dir, "runtimeclass-runc.yaml")
	if err := os.WriteFile(runc, []byte("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: runc\nhandler: runc\n"), 0o644); err != nil {
		return err
	}
	if _, err := c.kubectl(ctx, "apply", "-f", runc); err != nil {
		return err
	}
	// Pods are refused until the service-account controller made the
	// namespace's default ServiceAccount.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.kubectl(ctx, "get", "serviceaccount", "default", "-n", "default")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no default ServiceAccount after 1m: %w", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// kubectl runs kubectl against the cluster and returns its stdout; the error
// carries stderr.
func (c *Cluster) kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.K8sBin, "kubectl"), append(c.KubectlFlags(), args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// KubectlFlags are the flags every kubectl needs for this cluster: its
// kubeconfig, and a discovery cache in the cluster's directory instead of
// ~/.kube/cache.
func (c *Cluster) KubectlFlags() []string {
	return []string{"--kubeconfig=" + c.Kubeconfig, "--cache-dir=" + filepath.Join(c.Dir, "kubectl-cache")}
}

// start runs one component with its output in logs/<name>.log. Like the
// harness's containerd it is forked from a thread that stays alive as long
// as the child, so that Pdeathsig kills it only when the test process dies.
func (c *Cluster) start(name, bin string, args ...string) error {
	comp, err := c.spawn(name, bin, args...)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, comp)
	return nil
}

// spawn is start without adding the component to the cluster's: a second
// node's kubelet is started by a test while others run and is stopped by
// that test.
func (c *Cluster) spawn(name, bin string, args ...string) (*component, error) {
	logPath := filepath.Join(c.Dir, "logs", name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	comp := &component{name: name, cmd: cmd, exited: make(chan struct{}), log: logPath}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		comp.waitErr = cmd.Wait()
		close(comp.exited)
		if !comp.stopped.Load() {
			c.logf("%s exited unexpectedly: %v", name, comp.waitErr)
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.logf("%s pid %d", name, cmd.Process.Pid)
	return comp, nil
}

// exitedErr reports a component that exited, with the tail of its log.
func (c *Cluster) exitedErr() error {
	for _, p := range c.procs {
		select {
		case <-p.exited:
			if !p.stopped.Load() {
				return fmt.Errorf("%s exited: %v\n%s", p.name, p.waitErr, tail(p.log, 30))
			}
		default:
		}
	}
	return nil
}

// Healthy returns nil while every component runs.
func (c *Cluster) Healthy() error {
	if err := c.exitedErr(); err != nil {
		return err
	}
	return c.Env.Err()
}

func (c *Cluster) waitHTTP(ctx context.Context, name, url string, tlsConf *tls.Config, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		last = err
		if err := c.exitedErr(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not healthy at %s after %v: %v", name, url, timeout, last)
}

func clientTLS(ca, cert, key string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}, nil
}

func writeKubeconfig(path, server, ca, cert, key string) error {
	return os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, certificate-authority: %q}
users:
- name: e2e
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: e2e
  context: {cluster: e2e, user: e2e}
current-context: e2e
`, server, ca, cert, key)), 0o600)
}

// Stop stops the kubelet first (so it starts nothing new), then the control
// plane, then the private containerd with everything it ran, and finally
// removes whatever is left on the host. It is safe to call twice.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		errs = append(errs, c.procs[i].stop())
	}
	c.procs = nil
	if c.Env != nil {
		errs = append(errs, c.Env.Close())
		c.Env = nil
	}
	errs = append(errs, cleanHost(c.Dir))
	return errors.Join(errs...)
}

func (p *component) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	p.stopped.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	return fmt.Errorf("%s ignored SIGTERM for 20s and was killed", p.name)
}

// SaveLogs copies the components' logs and containerd's to dst (replacing
// it), for reading after a failed run whose directory is gone.
func (c *Cluster) SaveLogs(dst string) error {
	_ = os.RemoveAll(dst)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "logs", "*.log"))
	if c.Env != nil {
		files = append(files, c.Env.LogPath())
	}
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o644))
	}
	return errors.Join(errs...)
}

// LogTails returns the last n lines of every component's log.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- tail of %s ---\n%s\n", p.name, tail(p.log, n))
	}
	return b.String()
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
