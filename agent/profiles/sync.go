package profiles

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
)

// Observer is told what the syncer did (the agent's metrics).
type Observer interface {
	// ProfileOp counts merge, update, delete and conflict operations.
	ProfileOp(op string)
	// Error counts an error by a short reason.
	Error(reason string)
	// SetProfiles reports the stored profiles per namespace.
	SetProfiles(perNamespace map[string]int)
}

// Syncer keeps one node's profile store and the cluster's
// RecordedSeccompProfile objects in step. Sync is called periodically by
// one goroutine.
type Syncer struct {
	Client dynamic.Interface
	Store  *profilestore.Store
	// Node is this node's name, as it appears in the objects' status.
	Node string
	// Namespace limits the syncer to one namespace ("" for all).
	Namespace string
	Observer  Observer
	// StatePath keeps the syncer's memory across restarts ("" in memory).
	StatePath string
	// GOARCH is the architecture profiles are validated for ("" means
	// runtime.GOARCH; tests set it).
	GOARCH string
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	st *state
	// lastErr is the last error of each profile name, so that a profile
	// that fails the same way every round (its namespace does not exist,
	// RBAC forbids it) is logged once, not every round.
	lastErr map[string]string
}

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Syncer) goarch() string {
	if s.GOARCH != "" {
		return s.GOARCH
	}
	return runtime.GOARCH
}

// Sync does one round: every local profile with recordings the cluster
// has not seen is merged into its object (created if missing); every
// object's merged profile is written into the local store; the local
// profile of an object that was deleted is removed. With the API server
// unreachable it changes nothing and returns the error: the next round
// catches up, since the local store still holds every recording.
func (s *Syncer) Sync(ctx context.Context) error {
	if s.st == nil {
		st, err := loadState(s.StatePath)
		if err != nil {
			log.G(ctx).WithError(err).Warn("profile sync state")
			s.Observer.Error("state")
		}
		s.st = st
	}
	local, errs := s.Store.List()
	for _, err := range errs {
		// A corrupt stored profile is the operator's to look at (the
		// store refuses to merge into it too); it is left out here.
		log.G(ctx).WithError(err).Warn("recorded profile not synchronised")
		s.Observer.Error("store")
	}
	ri := s.Client.Resource(GVR).Namespace(s.Namespace)
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		s.Observer.Error("api")
		s.report(local)
		return fmt.Errorf("list %s: %w", Resource, err)
	}
	objects := map[recorded.Name]*Object{}
	corrupt := map[recorded.Name]bool{}
	for i := range list.Items {
		u := &list.Items[i]
		o, err := FromUnstructured(u)
		if err == nil {
			_, err = o.Profile(s.goarch())
		}
		if err != nil {
			log.G(ctx).WithError(err).Warn("recorded profile object ignored")
			s.Observer.Error("object")
			if o != nil {
				corrupt[o.ProfileName()] = true
			}
			continue
		}
		objects[o.ProfileName()] = o
	}

	var syncErrs []error
	seen := map[string]bool{}
	for _, p := range local {
		if s.Namespace != "" && p.Name.Namespace != s.Namespace {
			continue
		}
		seen[p.Name.String()] = true
		if corrupt[p.Name] {
			continue
		}
		if err := s.syncOne(ctx, p, objects[p.Name]); s.failed(p.Name, err) {
			syncErrs = append(syncErrs, err)
		}
		delete(objects, p.Name)
	}
	// Objects this node has no profile of: recorded elsewhere.
	for n, o := range objects {
		seen[n.String()] = true
		if err := s.syncOne(ctx, nil, o); s.failed(n, err) {
			syncErrs = append(syncErrs, err)
		}
	}
	for k := range s.st.Entries {
		if !seen[k] {
			delete(s.st.Entries, k)
		}
	}
	if err := s.st.save(); err != nil {
		s.Observer.Error("state")
		syncErrs = append(syncErrs, fmt.Errorf("profile sync state: %w", err))
	}
	after, _ := s.Store.List()
	s.report(after)
	return errors.Join(syncErrs...)
}

// failed notes the outcome of a name's sync and says whether err is worth
// returning (and so logging): an error is, the first time it occurs.
func (s *Syncer) failed(n recorded.Name, err error) bool {
	if s.lastErr == nil {
		s.lastErr = map[string]string{}
	}
	k := n.String()
	if err == nil {
		delete(s.lastErr, k)
		return false
	}
	if s.lastErr[k] == err.Error() {
		return false
	}
	s.lastErr[k] = err.Error()
	return true
}

func (s *Syncer) report(ps []*recorded.Profile) {
	per := map[string]int{}
	for _, p := range ps {
		per[p.Name.Namespace]++
	}
	s.Observer.SetProfiles(per)
}

// syncOne brings one name in step: local is the stored profile (nil when
// the node has none), o its object (nil when there is none).
func (s *Syncer) syncOne(ctx context.Context, local *recorded.Profile, o *Object) error {
	var n recorded.Name
	if local != nil {
		n = local.Name
	} else {
		n = o.ProfileName()
	}
	e := s.st.get(n)
	logger := log.G(ctx).WithField("profile", n.String())
	if e.Pending != "" {
		// A write was under way when the agent stopped: it happened if
		// the store holds it now.
		if local != nil && local.Checksum == e.Pending {
			e.Written, e.Accounted = e.Pending, e.PendingRuns
		}
		e.Pending, e.PendingRuns = "", 0
	}
	if o == nil && e.Synced {
		// The object existed and is gone: someone deleted it to stop
		// enforcing the profile (or to start the recording over) on
		// every node.
		if local != nil {
			if err := s.Store.Delete(n); err != nil && !errdefs.IsNotFound(err) {
				s.Observer.Error("store")
				return fmt.Errorf("remove recorded profile %s after its object was deleted: %w", n, err)
			}
			s.Observer.ProfileOp("delete")
			logger.Info("recorded profile object deleted: removed from the node's store")
		}
		delete(s.st.Entries, n.String())
		return nil
	}
	if local != nil && local.Checksum != e.Written {
		// Recordings the cluster has not seen: merge them in.
		runs := local.Runs - e.Accounted
		if runs < 0 {
			runs = local.Runs // the store was replaced by hand
		}
		merged, err := s.merge(ctx, local, runs)
		if err != nil {
			s.Observer.Error("api")
			return err
		}
		o = merged
		e.Accounted, e.Synced = local.Runs, true
		if err := s.st.save(); err != nil {
			s.Observer.Error("state")
			return err
		}
	}
	if o == nil {
		return nil
	}
	e.Synced = true
	want, err := o.Profile(s.goarch())
	if err != nil {
		s.Observer.Error("object")
		return err
	}
	cur := ""
	if local != nil {
		cur = local.Checksum
	}
	if want.Checksum == cur {
		e.Written, e.Accounted = cur, want.Runs
		return nil
	}
	e.Pending, e.PendingRuns = want.Checksum, want.Runs
	if err := s.st.save(); err != nil {
		s.Observer.Error("state")
		return err
	}
	switch err := s.Store.Replace(want, cur); {
	case errors.Is(err, profilestore.ErrChanged):
		// A shim saved a recording just now; the next round merges it.
		e.Pending, e.PendingRuns = "", 0
		return nil
	case err != nil:
		e.Pending, e.PendingRuns = "", 0
		s.Observer.Error("store")
		return fmt.Errorf("write recorded profile %s into the node's store: %w", n, err)
	}
	e.Written, e.Accounted = want.Checksum, want.Runs
	e.Pending, e.PendingRuns = "", 0
	s.Observer.ProfileOp("update")
	logger.WithField("runs", want.Runs).Debug("merged profile written to the node's store")
	return nil
}

// merge adds local (with runs new recordings) to its object, creating the
// object when there is none, and retries on conflicts with other nodes'
// agents. A merge this node already made (its status holds local's
// checksum) is not made again.
func (s *Syncer) merge(ctx context.Context, local *recorded.Profile, runs int) (*Object, error) {
	n := local.Name
	name, err := ObjectName(n)
	if err != nil {
		return nil, err
	}
	ri := s.Client.Resource(GVR).Namespace(n.Namespace)
	var out *Object
	err = retry.OnError(retry.DefaultBackoff, func(err error) bool {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			s.Observer.ProfileOp("conflict")
			return true
		}
		return false
	}, func() error {
		u, err := ri.Get(ctx, name, metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return err
		}
		o := &Object{}
		o.Name, o.Namespace = name, n.Namespace
		if !create {
			if o, err = FromUnstructured(u); err != nil {
				return err
			}
			if o.mergedChecksum(s.Node) == local.Checksum {
				out = o // merged before a crash: not again
				return nil
			}
		}
		merged := recorded.Normalize(local)
		merged.Runs = runs
		if !create {
			cur, err := o.Profile(s.goarch())
			if err != nil {
				return err
			}
			cur.Runs += runs
			local := *local
			local.Runs = 0
			if merged, err = recorded.Merge(cur, &local); err != nil {
				return err
			}
		}
		if merged.Runs < 1 {
			merged.Runs = 1 // a profile stands for at least one recording
		}
		o.setProfile(merged)
		ns := o.node(s.Node)
		ns.Runs += runs
		ns.LastRecorded = metaTime(local.LastRecorded)
		ns.LastMerged = metaTime(s.now())
		ns.MergedChecksum = local.Checksum
		nu, err := o.ToUnstructured()
		if err != nil {
			return err
		}
		if create {
			u, err = ri.Create(ctx, nu, metav1.CreateOptions{})
		} else {
			u, err = ri.Update(ctx, nu, metav1.UpdateOptions{})
		}
		if err != nil {
			return err
		}
		if out, err = FromUnstructured(u); err != nil {
			return err
		}
		s.Observer.ProfileOp("merge")
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("merge recorded profile %s into %s %s/%s: %w", n, Kind, n.Namespace, name, err)
	}
	return out, nil
}
