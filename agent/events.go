package agent

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/agent/store"
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
	name := fmt.Sprintf("%s.%x", pod.Name, h.Sum64())
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	_, err := a.store.GuaranteedUpdate(ctx, store.Events, pod.Namespace, name, func(cur store.Object) (store.Object, error) {
		e := cur.(*corev1.Event)
		e.Count++
		e.LastTimestamp = now
		return e, nil
	})
	if apierrors.IsNotFound(err) {
		e := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pod.Namespace},
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
		_, err = a.store.Create(ctx, store.Events, e)
	}
	if err != nil && ctx.Err() == nil {
		slog.Warn("record event", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "err", err)
	}
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
