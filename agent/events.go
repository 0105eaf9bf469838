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

	"github.com/podagent/podagent/apiserver/store"
)

// eventTTL is how long an event is kept, the kube-apiserver's default (--event-ttl).
const eventTTL = time.Hour

// event records what happened to a pod, as the kubelet's event recorder does: the same event
// again (same object, reason and message) counts up on one Event instead of adding another.
// Events are for people reading `kubectl describe`; failing to record one is logged, never an error.
func (a *Agent) event(ctx context.Context, pod *corev1.Pod, container, typ, reason, msg string, source string) {
	if source == "" {
		source = "kubelet"
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", pod.UID, container, reason, msg)
	key := h.Sum64()
	clock := time.Now()
	now := metav1.NewTime(clock.Truncate(time.Second))
	var err error = apierrors.NewNotFound(eventsResource, "")
	if name, ok := a.events.name(key); ok {
		_, err = a.store.GuaranteedUpdate(ctx, store.Events, pod.Namespace, name, func(cur store.Object) (store.Object, error) {
			e := cur.(*corev1.Event)
			e.Count++
			e.LastTimestamp = now
			return e, nil
		})
	}
	if apierrors.IsNotFound(err) {
		// Named as the kubelet's recorder names events: the object's name and the time in
		// nanoseconds, so that listing them (by name) lists one object's events in the order
		// they happened, as `kubectl describe` shows them.
		e := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace},
			InvolvedObject: corev1.ObjectReference{
				Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
				ResourceVersion: pod.ResourceVersion,
			},
			Reason: reason, Message: msg, Type: typ, Count: 1,
			FirstTimestamp: now, LastTimestamp: now,
			Source:              corev1.EventSource{Component: source},
			ReportingController: source, ReportingInstance: a.cfg.NodeName,
		}
		if source == "kubelet" {
			e.Source.Host = a.cfg.NodeName
		}
		if container != "" {
			e.InvolvedObject.FieldPath = fmt.Sprintf("spec.containers{%s}", container)
		}
		// Two events in the same nanosecond (a coarse clock) take the next one.
		for ns := clock.UnixNano(); ; ns++ {
			e.Name = fmt.Sprintf("%s.%x", pod.Name, ns)
			if _, err = a.store.Create(ctx, store.Events, e); !apierrors.IsAlreadyExists(err) {
				break
			}
		}
		if err == nil {
			a.events.remember(key, e.Name)
		}
	}
	if err != nil && ctx.Err() == nil {
		slog.Warn("record event", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "err", err)
	}
}

// eventsResource names events in errors.
var eventsResource = corev1.Resource("events")

// eventNames maps what identifies an event (object, container, reason and message) to the name of
// the Event that counts it, as the kubelet's event correlator does. It is memory only: after a
// restart the same event starts a new Event, as it does after a kubelet restart.
type eventNames struct {
	mu    sync.Mutex
	names map[uint64]string
}

// maxEventNames bounds the map, as the correlator's cache (4096 entries): when full it starts
// anew, and an event seen again then starts a new Event.
const maxEventNames = 4096

func (n *eventNames) name(key uint64) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	name, ok := n.names[key]
	return name, ok
}

func (n *eventNames) remember(key uint64, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.names == nil || len(n.names) >= maxEventNames {
		n.names = map[uint64]string{}
	}
	n.names[key] = name
}

// collectEvents removes events older than eventTTL, and those of namespaces that are gone.
func (a *Agent) collectEvents(ctx context.Context) error {
	objs, _, err := a.store.List(ctx, store.Events, "")
	if err != nil {
		return err
	}
	nss, _, err := a.store.List(ctx, store.Namespaces, "")
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, ns := range nss {
		live[ns.GetName()] = true
	}
	for _, obj := range objs {
		e := obj.(*corev1.Event)
		if time.Since(e.LastTimestamp.Time) < eventTTL && live[e.Namespace] {
			continue
		}
		if _, err := a.store.Delete(ctx, store.Events, e.Namespace, e.Name, nil); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
