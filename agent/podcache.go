package agent

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/podagent/podagent/internal/keys"
)

// cacheSyncTimeout bounds the wait for the first list of the node's pods.
const cacheSyncTimeout = time.Minute

// podCache holds the pods the API has bound to this node, as the kubelet's API pod source: one
// list and watch with the field selector spec.nodeName=NODE, mirror pods included.
type podCache struct {
	lister listersv1.PodLister
}

// podEvent is a change to a pod of the cache: deleted says that the object is gone from the API.
type podEvent func(pod *corev1.Pod, deleted bool)

// startPodCache starts the cache of node's pods, calling onEvent for each change, and waits for
// its first list.
func startPodCache(ctx context.Context, client kubernetes.Interface, node string, onEvent podEvent) (*podCache, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
	}))
	inf := factory.Core().V1().Pods()
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { onPod(obj, false, onEvent) },
		UpdateFunc: func(_, obj any) { onPod(obj, false, onEvent) },
		DeleteFunc: func(obj any) { onPod(obj, true, onEvent) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch the pods of node %s: %w", node, err)
	}
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, cacheSyncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.Informer().HasSynced) {
		return nil, fmt.Errorf("list the pods of node %s: no answer from the API within %s", node, cacheSyncTimeout)
	}
	return &podCache{lister: inf.Lister()}, nil
}

func onPod(obj any, deleted bool, onEvent podEvent) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		onEvent(p, deleted)
	}
}

// get is a copy of the cached pod namespace/name, nil if there is none.
func (c *podCache) get(namespace, name string) *corev1.Pod {
	p, err := c.lister.Pods(namespace).Get(name)
	if err != nil {
		return nil // the lister's only error is NotFound
	}
	return p.DeepCopy()
}

// all is every cached pod (read-only: they are the cache's own).
func (c *podCache) all() []*corev1.Pod {
	pods, _ := c.lister.List(labels.Everything())
	return pods
}

// mirrors is every cached mirror pod.
func (c *podCache) mirrors() []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range c.all() {
		if isMirror(p) {
			out = append(out, p)
		}
	}
	return out
}

// isMirror reports whether pod is the API's reflection of a static pod.
func isMirror(pod *corev1.Pod) bool { return pod.Annotations[keys.MirrorAnnotation] != "" }
