package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
)

// controllerResync is how often each controller looks at everything again when nothing woke it.
const controllerResync = 10 * time.Second

// eventTTL is how long an event is kept, the kube-apiserver's default (--event-ttl).
const eventTTL = time.Hour

// RunControllers does, until ctx ends, what a cluster's scheduler and controller manager would do
// for the embedded API: bind pods to a node whose labels satisfy their nodeSelector, finish the
// deletion of Terminating namespaces, and expire old events.
func (cp *ControlPlane) RunControllers(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		cp.onChange(ctx, []string{store.Pods, store.Nodes}, "schedule pods", cp.schedule)
	})
	wg.Go(func() {
		cp.onChange(ctx, []string{store.Pods, store.Namespaces}, "namespace deletion", cp.syncNamespaces)
	})
	wg.Go(func() {
		cp.onChange(ctx, nil, "remove old events", cp.collectEvents)
	})
	wg.Wait()
}

// onChange runs fn at start, whenever one of resources changes, and every controllerResync.
func (cp *ControlPlane) onChange(ctx context.Context, resources []string, what string, fn func(context.Context) error) {
	kick := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, r := range resources {
		wg.Go(func() {
			for ctx.Err() == nil {
				ch, err := cp.store.Watch(ctx, r, "", cp.store.ResourceVersion())
				if err != nil {
					sleepCtx(ctx, time.Second)
					continue
				}
				for range ch {
					select {
					case kick <- struct{}{}:
					default:
					}
				}
			}
		})
	}
	t := time.NewTicker(controllerResync)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			slog.Error(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
	}
}

// schedule binds each pod that has no node to the first node (by name) that is schedulable and
// whose labels satisfy the pod's nodeSelector, as the scheduler's NodeAffinity and
// NodeUnschedulable filters do, or records that none fits.
func (cp *ControlPlane) schedule(ctx context.Context) error {
	objs, _, err := cp.store.List(ctx, store.Pods, "")
	if err != nil {
		return err
	}
	var pending []*corev1.Pod
	for _, obj := range objs {
		if p := obj.(*corev1.Pod); p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
			pending = append(pending, p)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	nodeObjs, _, err := cp.store.List(ctx, store.Nodes, "")
	if err != nil {
		return err
	}
	var nodes []*corev1.Node
	for _, obj := range nodeObjs {
		nodes = append(nodes, obj.(*corev1.Node))
	}
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	var errs []error
	for _, p := range pending {
		errs = append(errs, cp.bind(ctx, p, nodes))
	}
	return errors.Join(errs...)
}

// bind binds pod to the first of nodes it fits, or marks it Unschedulable with the scheduler's
// message; an event says which, once per change.
func (cp *ControlPlane) bind(ctx context.Context, pod *corev1.Pod, nodes []*corev1.Node) error {
	var node string
	mismatch, unschedulable := 0, 0
	for _, n := range nodes {
		switch {
		case n.Spec.Unschedulable:
			unschedulable++
		case !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(labels.Set(n.Labels)):
			mismatch++
		default:
			if node == "" {
				node = n.Name
			}
		}
	}
	msg := unschedulableMessage(len(nodes), mismatch, unschedulable)
	changed := false
	_, err := cp.store.GuaranteedUpdate(ctx, store.Pods, pod.Namespace, pod.Name, func(cur store.Object) (store.Object, error) {
		p := cur.(*corev1.Pod)
		if p.UID != pod.UID || p.Spec.NodeName != "" {
			changed = false
			return p, nil
		}
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		if node != "" {
			p.Spec.NodeName = node
			setPodCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, now)
			changed = true
			return p, nil
		}
		if p.Status.Phase == "" {
			p.Status.Phase = corev1.PodPending
		}
		changed = setPodCondition(p, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: msg}, now)
		return p, nil
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schedule pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if !changed {
		return nil
	}
	if node != "" {
		slog.Info("pod scheduled", "pod", pod.Namespace+"/"+pod.Name, "node", node)
		cp.event(ctx, pod, corev1.EventTypeNormal, "Scheduled", fmt.Sprintf("Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node))
	} else {
		cp.event(ctx, pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	}
	return nil
}

// unschedulableMessage is the scheduler's message for a pod that fits none of n nodes.
func unschedulableMessage(n, mismatch, unschedulable int) string {
	var reasons []string
	if mismatch > 0 {
		reasons = append(reasons, fmt.Sprintf("%d node(s) didn't match Pod's node affinity/selector", mismatch))
	}
	if unschedulable > 0 {
		reasons = append(reasons, fmt.Sprintf("%d node(s) were unschedulable", unschedulable))
	}
	msg := fmt.Sprintf("0/%d nodes are available", n)
	if len(reasons) > 0 {
		msg += ": " + strings.Join(reasons, ", ")
	}
	return msg + fmt.Sprintf(". preemption: 0/%d nodes are available: %d Preemption is not helpful for scheduling.", n, n)
}

// setPodCondition sets c on pod, keeping its transition time when the status is the same; it
// reports whether anything changed.
func setPodCondition(pod *corev1.Pod, c corev1.PodCondition, now metav1.Time) bool {
	c.LastTransitionTime = now
	for i, old := range pod.Status.Conditions {
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return false
		}
		pod.Status.Conditions[i] = c
		return true
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
	return true
}

// event records what the scheduler did to a pod, as the default-scheduler's events read.
func (cp *ControlPlane) event(ctx context.Context, pod *corev1.Pod, typ, reason, msg string) {
	now := time.Now()
	t := metav1.NewTime(now.Truncate(time.Second))
	e := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: fmt.Sprintf("%s.%x", pod.Name, now.UnixNano())},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Reason: reason, Message: msg, Type: typ, Count: 1, FirstTimestamp: t, LastTimestamp: t,
		Source: corev1.EventSource{Component: "default-scheduler"}, ReportingController: "default-scheduler",
	}
	if _, err := cp.store.Create(ctx, store.Events, e); err != nil && ctx.Err() == nil {
		slog.Warn("record event", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "err", err)
	}
}

// syncNamespaces does the namespace controller's work for every Terminating namespace: it deletes
// the namespace's pods gracefully and, once none is left, the namespace itself. Mirror pods are
// not the namespace's to delete (their node's manifests define them), so they do not hold it up.
func (cp *ControlPlane) syncNamespaces(ctx context.Context) error {
	objs, _, err := cp.store.List(ctx, store.Namespaces, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range objs {
		if ns := obj.(*corev1.Namespace); ns.DeletionTimestamp != nil {
			errs = append(errs, cp.finishNamespaceDeletion(ctx, ns))
		}
	}
	return errors.Join(errs...)
}

func (cp *ControlPlane) finishNamespaceDeletion(ctx context.Context, ns *corev1.Namespace) error {
	objs, _, err := cp.store.List(ctx, store.Pods, ns.Name)
	if err != nil {
		return err
	}
	var errs []error
	left := 0
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		if p.Annotations[keys.MirrorAnnotation] != "" {
			continue
		}
		left++
		if p.DeletionTimestamp != nil {
			continue
		}
		if _, _, err := cp.registry.DeletePod(ctx, p.Namespace, p.Name, nil, &metav1.Preconditions{UID: ptr.To(p.UID)}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if left > 0 || len(errs) > 0 {
		return errors.Join(errs...)
	}
	_, err = cp.store.Delete(ctx, store.Namespaces, "", ns.Name, &metav1.Preconditions{UID: ptr.To(ns.UID)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove namespace %s: %w", ns.Name, err)
	}
	slog.Info("namespace deleted", "namespace", ns.Name)
	return nil
}

// collectEvents removes events older than eventTTL, and those of namespaces that are gone.
func (cp *ControlPlane) collectEvents(ctx context.Context) error {
	objs, _, err := cp.store.List(ctx, store.Events, "")
	if err != nil {
		return err
	}
	nss, _, err := cp.store.List(ctx, store.Namespaces, "")
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
		if _, err := cp.store.Delete(ctx, store.Events, e.Namespace, e.Name, nil); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
