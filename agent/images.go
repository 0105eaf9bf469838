package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/runtime"
)

// imageIDCache remembers the ID status shows for each image reference, so that status does not
// ask containerd for it on every sync. A pull refreshes the entry.
type imageIDCache struct {
	mu  sync.Mutex
	ids map[string]string
}

func (c *imageIDCache) set(ref, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = map[string]string{}
	}
	c.ids[ref] = id
}

func (c *imageIDCache) get(ref string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.ids[ref]
	return id, ok
}

// imageIDs is the image ID of every image o's containers run.
func (a *Agent) imageIDs(ctx context.Context, o observed) map[string]string {
	out := map[string]string{}
	for _, list := range o.instances {
		for _, c := range list {
			if _, ok := out[c.Image]; ok || c.Image == "" {
				continue
			}
			id, ok := a.images.get(c.Image)
			if !ok {
				var err error
				if id, err = a.rt.ImageID(ctx, c.Image); err != nil {
					continue
				}
				a.images.set(c.Image, id)
			}
			out[c.Image] = id
		}
	}
	return out
}

// ensureImage makes container c's image present under its pull policy. A failure is kept on the
// worker as the container's waiting state (ErrImagePull, ErrImageNeverPull), and the next attempt
// waits a back-off that doubles as the kubelet's does (shown as ImagePullBackOff meanwhile).
func (a *Agent) ensureImage(ctx context.Context, w *podWorker, pod *corev1.Pod, c *corev1.Container) error {
	_, presentErr := a.rt.ImageID(ctx, c.Image)
	present := presentErr == nil
	pulls := c.ImagePullPolicy == corev1.PullAlways || (!present && c.ImagePullPolicy != corev1.PullNever)
	if pulls {
		a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	}
	start := time.Now()
	img, err := a.rt.EnsureImage(ctx, c.Image, c.ImagePullPolicy)
	if err == nil {
		delete(w.imageErrs, c.Name)
		a.images.set(img.Ref, img.ID)
		if pulls {
			a.metrics.imagePulls.WithLabelValues("success").Inc()
			a.metrics.imagePullTime.Observe(time.Since(start).Seconds())
			a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Pulled",
				fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(start).Round(time.Millisecond)))
		} else {
			a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		}
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	a.metrics.imagePulls.WithLabelValues("failure").Inc()
	ie := w.imageErrs[c.Name]
	ie.backOff = min(max(2*ie.backOff, initialBackOff), maxBackOff)
	ie.retryAt = time.Now().Add(ie.backOff)
	ie.wait = waitState{reason: "ErrImagePull", message: err.Error()}
	if errors.Is(err, runtime.ErrImageNeverPull) {
		ie.wait.reason = "ErrImageNeverPull"
	}
	w.imageErrs[c.Name] = ie
	a.event(ctx, pod, c.Name, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
	a.event(ctx, pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: "+ie.wait.reason)
	slog.Warn("image not available", "pod", w.ref().String(), "container", c.Name, "image", c.Image, "reason", ie.wait.reason, "err", err)
	return nil
}
