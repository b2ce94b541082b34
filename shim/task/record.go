package task

import (
	"context"
	"fmt"
	"sync"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stockade-dev/stockade/config"
	"github.com/stockade-dev/stockade/cri"
	"github.com/stockade-dev/stockade/hooks"
	"github.com/stockade-dev/stockade/node/profilestore"
	"github.com/stockade-dev/stockade/profiles/recorded"
	"github.com/stockade-dev/stockade/shim/record"
)

// openStore opens the node's profile store for the seccomp step.
func openStore(c *config.Config) (hooks.ProfileStore, error) {
	return profilestore.Open(c.Record.StoreDir)
}

// recording is one recorded container, from its Create to the profile
// merged into the store after its init exits.
type recording struct {
	name  recorded.Name
	rec   *record.Recording
	store *profilestore.Store
	once  sync.Once
	done  chan struct{}
}

// watch starts recording the container whose cgroup is dir. The store is
// checked first: a recording that cannot be written at the end would be
// lost work, so a missing or read-only store fails the container now.
func (r *Runtime) watch(ctx context.Context, node *config.Config, name, dir string) (*recording, error) {
	n, err := recorded.ParseName(name)
	if err != nil {
		return nil, err
	}
	store, err := profilestore.Open(node.Record.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", n, err)
	}
	if err := unix.Access(store.Dir, unix.W_OK); err != nil {
		return nil, fmt.Errorf("record %s: profile store %s is not writable: %w: %w", n, store.Dir, err, errdefs.ErrFailedPrecondition)
	}
	r.mu.Lock()
	if r.recorder == nil {
		r.recorder = record.New()
	}
	rr := r.recorder
	r.mu.Unlock()
	rec, err := rr.Watch(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", n, err)
	}
	return &recording{name: n, rec: rec, store: store, done: make(chan struct{})}, nil
}

// finish ends a recording once: it reads what was recorded, stops it (the
// tracepoint goes with the last one) and merges the profile into the store
// in the background; done closes when the profile is written or the
// attempt failed.
func (rc *recording) finish(ctx context.Context, runtime *Runtime, containerID string, pod cri.Pod) {
	rc.once.Do(func() {
		syscalls, err := rc.rec.Syscalls()
		rc.rec.Stop(ctx)
		logger := log.G(ctx).WithFields(log.Fields{"container_id": containerID, "profile": rc.name.String()})
		if err != nil {
			logger.WithError(err).Error("record mode: recording lost")
			close(rc.done)
			return
		}
		go func() {
			defer close(rc.done)
			img := runtime.image(ctx, containerID, pod.Image)
			p, err := rc.store.Save(recorded.New(rc.name, img, time.Now().UTC(), syscalls))
			if err != nil {
				logger.WithError(err).Error("record mode: profile not saved")
				return
			}
			logger.WithFields(log.Fields{"syscalls": len(p.Names()), "runs": p.Runs, "path": rc.store.Path(rc.name)}).Info("record mode: profile saved")
		}()
	})
}

// wait blocks until the profile is saved (or given up on).
func (rc *recording) wait() { <-rc.done }

// cancel stops a recording whose container never ran.
func (rc *recording) cancel(ctx context.Context) {
	rc.once.Do(func() {
		rc.rec.Stop(ctx)
		close(rc.done)
	})
}

// image asks containerd which image the container was created from and
// its digest. A recorded profile names them so that operators can tell
// which build a profile was learned from; when containerd cannot say, the
// name CRI passed is kept without a digest.
func (r *Runtime) image(ctx context.Context, containerID, name string) recorded.Image {
	img := recorded.Image{Name: name}
	if r.containerd == "" {
		return img
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.WithoutCancel(ctx), r.ns), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+r.containerd, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.G(ctx).WithError(err).Warn("record mode: containerd client")
		return img
	}
	defer conn.Close()
	c, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: containerID})
	if err != nil {
		log.G(ctx).WithError(err).WithField("container_id", containerID).Warn("record mode: look up container image")
		return img
	}
	if c.Container.Image != "" {
		img.Name = c.Container.Image
	}
	if img.Name == "" {
		return img
	}
	i, err := imagesapi.NewImagesClient(conn).Get(ctx, &imagesapi.GetImageRequest{Name: img.Name})
	if err != nil {
		log.G(ctx).WithError(err).WithField("image", img.Name).Warn("record mode: look up image digest")
		return img
	}
	if i.Image.Target != nil {
		img.Digest = i.Image.Target.Digest
	}
	return img
}
