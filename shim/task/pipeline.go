package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/denial"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/node/idalloc"
	"github.com/stockade-dev/stockade/profiles/userns"
	"github.com/stockade-dev/stockade/shim/denials"
	aadenials "github.com/stockade-dev/stockade/shim/denials/apparmor"
)

// buildPipeline assembles the hooks pipeline for a node config. The order is
// the order of the data flow: user namespace first (later steps read the
// mappings), then the profiles, and denial wiring last (it rewrites the
// finished seccomp profile).
func buildPipeline(ctx context.Context, ns string, c *config.Config) (hooks.Pipeline, []func(context.Context), error) {
	u, err := hooks.NewUserNSStepFromConfig(c)
	if err != nil {
		return nil, nil, err
	}
	// A shim killed with SIGKILL never released its pod's range; the next
	// shim to start gives back every range whose pod is gone.
	if _, err := u.Reclaim(ctx, podAlive); err != nil {
		log.G(ctx).WithError(err).Warn("reclaim userns ranges")
	}
	// Without the node-wide cache every pod's first container generates
	// its profile: slower, not less safe.
	if err := hooks.ShareSeccompProfiles(filepath.Join(StateRootBase, "seccomp-cache")); err != nil {
		log.G(ctx).WithError(err).Warn("seccomp profiles not shared between pods")
	}
	var closers []func(context.Context)
	// A nil agent makes the denials step a no-op: the profile still
	// denies, only the records are off.
	var step hooks.DenialAgent
	agent := startDenialAgent(ctx, ns, c)
	if agent != nil {
		closers = append(closers, func(context.Context) { _ = agent.Close() })
		step = hookAgent{agent}
	}
	p := hooks.Pipeline{u, &hooks.SeccompStep{Store: openStore}, hooks.NewAppArmorStep(), hooks.NewDenialsStep(step)}
	if agent != nil {
		// AppArmor's denials go to the same sinks. Closers run in reverse:
		// the watcher stops before the agent.
		w := aadenials.New(ctx, agent)
		closers = append(closers, func(context.Context) { _ = w.Close() })
		p = append(p, appArmorDenialsStep{w})
	}
	return p, closers, nil
}

// hookAgent presents the shim's denial agent to the hooks, which know only
// the denial contract.
type hookAgent struct{ *denials.Agent }

var _ hooks.DenialAgent = hookAgent{}

func (a hookAgent) Register(id string, attr denial.Attribution, mode, profile string, v denial.Verdict) error {
	return a.Agent.Register(id, attr, mode, profile, denials.WithVerdict(v))
}

// startDenialAgent starts the shim's seccomp notification agent: one per
// shim (so per pod), listening on a short filesystem socket that
// libcontainer hands each container's notify fd to. A failure to start it
// is logged once and leaves containers protected but unreported.
func startDenialAgent(ctx context.Context, ns string, c *config.Config) *denials.Agent {
	if !c.Denials.Enabled {
		return nil
	}
	host, _ := os.Hostname()
	agent, err := denials.New(c.Denials, host, denials.WithContext(ctx),
		denials.WithSocketPath(denials.SocketPath(denials.DefaultSocketDir, ns+"-"+strconv.Itoa(os.Getpid()))))
	if err != nil {
		log.G(ctx).WithError(err).Warn("denial streaming unavailable")
		return nil
	}
	return agent
}

// podAlive keeps a lease while its shim lives or libcontainer still has
// state for the pod's sandbox: containers run on after a crashed shim, and
// their range must not be handed to another pod.
func podAlive(l idalloc.Lease) bool {
	if idalloc.OwnerAlive(l) {
		return true
	}
	if l.Namespace != "" {
		_, err := os.Stat(filepath.Join(StateRoot(l.Namespace), l.ID, "state.json"))
		return err == nil
	}
	// A version 1 lease names no namespace: any namespace's state counts.
	m, _ := filepath.Glob(filepath.Join(StateRootBase, "*", l.Key, "state.json"))
	return len(m) > 0
}

// remapRootfs idmaps the rootfs for a remapped container: containerd's
// mount package idmaps each overlay lowerdir (or a bind) given uidmap= and
// gidmap= options, in milliseconds and without a recursive chown. The
// overlay upperdir itself is not idmapped, so only its top directory is
// handed to the range's root, which lets the container's root write there.
//
// containerd only opens the bundle to a remapped root when the spec it wrote
// had a user namespace; stockade adds the namespace later, so it does the
// same here: group of the mapped root, mode 0710.
func remapRootfs(bundle string, ms []mount.Mount, res hooks.Result) ([]mount.Mount, error) {
	if len(res.UIDMap) == 0 || len(res.GIDMap) == 0 {
		return ms, nil
	}
	opts := userns.RootfsMountOptions(res.UIDMap, res.GIDMap)
	hostUID, _ := userns.ToHost(res.UIDMap, 0)
	hostGID, _ := userns.ToHost(res.GIDMap, 0)
	if err := os.Chown(bundle, -1, int(hostGID)); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	if err := os.Chmod(bundle, 0o710); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	out := make([]mount.Mount, 0, len(ms))
	for _, m := range ms {
		if hasIDMapOption(m.Options) {
			out = append(out, m) // the snapshotter already mapped it
			continue
		}
		switch m.Type {
		case "overlay":
			for _, o := range m.Options {
				if dir, ok := strings.CutPrefix(o, "upperdir="); ok {
					if err := os.Lchown(dir, int(hostUID), int(hostGID)); err != nil {
						return nil, fmt.Errorf("rootfs upperdir %s: %w", dir, err)
					}
				}
			}
		case "bind", "rbind":
		default:
			out = append(out, m)
			continue
		}
		m.Options = append(append([]string(nil), m.Options...), opts...)
		out = append(out, m)
	}
	return out, nil
}

func hasIDMapOption(opts []string) bool {
	for _, o := range opts {
		if strings.HasPrefix(o, "uidmap=") || strings.HasPrefix(o, "gidmap=") {
			return true
		}
	}
	return false
}
