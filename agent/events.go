package agent

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// eventTTL is how long an event is kept, the kube-apiserver's default (--event-ttl).
const eventTTL = time.Hour

// event records what happened to a pod, as the kubelet's event recorder does: the same event
// again (same object, reason and message) counts up on one Event instead of adding another.
// Events are for people reading `kubectl describe`; failing to record one is logged, never an error.
func (a *Agent) event(ctx context.Context, pod *corev1.Pod, container, typ, reason, msg string) {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", pod.UID, container, reason, msg)
	key := h.Sum64()
	clock := time.Now()
	now := metav1.NewTime(clock.Truncate(time.Second))
	events := a.client.CoreV1().Events(pod.Namespace)
	var err error = apierrors.NewNotFound(eventsResource, "")
	if seen, ok := a.events.get(key); ok {
		patch := fmt.Sprintf(`{"count":%d,"lastTimestamp":%q}`, seen.count+1, now.UTC().Format(time.RFC3339))
		if _, err = events.Patch(ctx, seen.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err == nil {
			a.events.remember(key, seen.name, seen.count+1)
		}
	}
	if apierrors.IsNotFound(err) {
		// Named as the kubelet's recorder names events: the object's name and the time in
		// nanoseconds, so that listing them (by name) lists one object's events in the order
		// they happened, as `kubectl describe` shows them.
		e := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: fmt.Sprintf("%s.%x", pod.Name, clock.UnixNano())},
			InvolvedObject: corev1.ObjectReference{
				Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
				ResourceVersion: pod.ResourceVersion,
			},
			Reason: reason, Message: msg, Type: typ, Count: 1,
			FirstTimestamp: now, LastTimestamp: now,
			Source:              corev1.EventSource{Component: "kubelet", Host: a.cfg.NodeName},
			ReportingController: "kubelet", ReportingInstance: a.cfg.NodeName,
		}
		if container != "" {
			e.InvolvedObject.FieldPath = fmt.Sprintf("spec.containers{%s}", container)
		}
		if _, err = events.Create(ctx, e, metav1.CreateOptions{}); err == nil {
			a.events.remember(key, e.Name, 1)
		}
	}
	if err != nil && ctx.Err() == nil {
		slog.Warn("record event", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "err", err)
	}
}

// eventsResource names events in errors.
var eventsResource = corev1.Resource("events")

// eventNames maps what identifies an event (object, container, reason and message) to the Event
// that counts it, as the kubelet's event correlator does. It is memory only: after a restart the
// same event starts a new Event, as it does after a kubelet restart.
type eventNames struct {
	mu    sync.Mutex
	names map[uint64]seenEvent
}

type seenEvent struct {
	name  string
	count int32
}

// maxEventNames bounds the map, as the correlator's cache (4096 entries): when full it starts
// anew, and an event seen again then starts a new Event.
const maxEventNames = 4096

func (n *eventNames) get(key uint64) (seenEvent, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.names[key]
	return e, ok
}

func (n *eventNames) remember(key uint64, name string, count int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil || len(n.names) >= maxEventNames {
		n.names = map[uint64]seenEvent{}
	}
	n.names[key] = seenEvent{name: name, count: count}
}
