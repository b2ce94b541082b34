package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stockade-dev/stockade/integration/harness"
)

// A second node on the same machine, for the tests of what spans nodes
// (TestTwoNodes): its own private containerd (harness), CNI bridge and
// address, kubelet state, ports and cgroup root (below the first node's,
// so cleanHost's cgroup sweep and process kill cover it), and its state
// files in <cluster dir>/node2, which cleanHost reads after a killed run.
// It is tainted so that no other test's pod lands on it, and labelled
// stockade.dev/enabled=true for the RuntimeClass.
const (
	Node2Name       = "stockade-e2e-2"
	node2Dir        = "node2"
	node2Port       = 10360
	node2Healthz    = 10346
	node2TaintKey   = "stockade.dev/e2e-second-node"
	node2Toleration = `{key: "` + node2TaintKey + `", operator: Exists, effect: NoSchedule}`
)

// Node is a second node.
type Node struct {
	Name string
	IP   string
	Env  *harness.Env
	Dir  string

	c       *Cluster
	kubelet *component
}

// StartSecondNode starts the second node and waits until it is Ready. One
// at a time: the name, ports and directories are fixed.
func (c *Cluster) StartSecondNode(ctx context.Context) (_ *Node, retErr error) {
	n := &Node{Name: Node2Name, Dir: filepath.Join(c.Dir, node2Dir), c: c}
	if err := os.RemoveAll(n.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.Dir, 0o711); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, n.Stop())
		}
	}()
	env, err := harness.Start(ctx, harness.Options{Handler: harness.HandlerStockade, Logf: c.logf})
	if err != nil {
		return n, fmt.Errorf("second node's containerd: %w", err)
	}
	n.Env = env
	if err := writeFileSync(filepath.Join(n.Dir, harnessDirFile), env.Dir); err != nil {
		return n, err
	}
	if err := enableRecord(env); err != nil {
		return n, err
	}
	if n.IP, err = bridgeAddress(env, n.Dir); err != nil {
		return n, err
	}
	if err := makeCgroupDirs(n.cgroups()); err != nil {
		return n, err
	}
	n.kubelet, err = c.startKubeletOn(ctx, c.pki, kubeletNode{
		name: n.Name, ip: n.IP, dir: n.Dir, env: env,
		port: node2Port, healthz: node2Healthz, cgroupRoot: "/" + cgroupName + "/" + node2Dir,
		logName:   "kubelet-node2",
		extraArgs: []string{"--register-with-taints=" + node2TaintKey + "=true:NoSchedule"},
	})
	if err != nil {
		return n, err
	}
	if _, err := c.kubectl(ctx, "label", "node", n.Name, "stockade.dev/enabled=true", "--overwrite"); err != nil {
		return n, err
	}
	return n, nil
}

// Stop takes the node down: the kubelet, the Node object, the containerd
// with every pod it ran, the bridge and the cgroups.
func (n *Node) Stop() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if n.kubelet != nil {
		// Pods leave through their kubelet, which unmounts their volumes
		// and removes their sandboxes; whatever is left, the containerd's
		// teardown and the unmount below take.
		if _, err := n.c.kubectl(ctx, "delete", "pods", "--all-namespaces", "--field-selector", "spec.nodeName="+n.Name,
			"--wait", "--timeout=60s"); err != nil {
			n.c.logf("drain %s: %v", n.Name, err)
		}
	}
	if n.kubelet != nil {
		errs = append(errs, n.kubelet.stop())
		n.kubelet = nil
	}
	if _, err := n.c.kubectl(ctx, "delete", "node", n.Name, "--ignore-not-found", "--wait=false"); err != nil {
		errs = append(errs, err)
	}
	if n.Env != nil {
		errs = append(errs, n.Env.Close())
		n.Env = nil
	}
	errs = append(errs, removeCgroupTrees(n.cgroups()))
	if br := readState(n.Dir, bridgeFile); br != "" {
		errs = append(errs, harness.DeleteLink(br))
	}
	errs = append(errs, harness.UnmountUnder(n.Dir))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(n.Dir)
}

// cgroups is the node's kubelet cgroup root in every hierarchy.
func (n *Node) cgroups() []string {
	var out []string
	for _, d := range cgroupDirs() {
		out = append(out, filepath.Join(d, node2Dir))
	}
	return out
}
