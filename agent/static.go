package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/agent/source"
	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
)

var podsResource = schema.GroupResource{Resource: "pods"}

// staticPods keeps the store's mirror pods equal to what the manifest sources define: new pods
// are created, changed ones updated (the worker then restarts what changed) and pods whose
// manifest is gone deleted gracefully.
type staticPods struct {
	a *Agent
	// reported holds the last error logged per manifest, so that each is logged once.
	reported map[string]string
}

func (s *staticPods) apply(ctx context.Context, u source.Update) error {
	for origin, err := range u.Errs {
		if s.reported[origin] != err.Error() {
			slog.Error("manifest not (fully) used", "source", u.Source, "manifest", origin, "err", err)
			s.reported[origin] = err.Error()
		}
	}
	want := map[string]bool{}
	var errs []error
	for _, p := range u.Pods {
		want[p.Namespace+"/"+p.Name] = true
		if err := s.put(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	if u.Source == source.SourceHTTP && len(u.Errs) > 0 && len(u.Pods) == 0 {
		// The URL could not be read, and this process never read it: what the store holds from
		// it stays until the URL answers.
		return errors.Join(errs...)
	}
	objs, _, err := s.a.store.List(ctx, store.Pods, "")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, obj := range objs {
		p := obj.(*corev1.Pod)
		if p.Annotations[keys.MirrorAnnotation] == "" || p.Annotations[keys.ConfigSourceAnnotation] != u.Source ||
			want[p.Namespace+"/"+p.Name] || p.DeletionTimestamp != nil {
			continue
		}
		slog.Info("static pod removed from its source", "pod", p.Namespace+"/"+p.Name, "source", u.Source)
		if _, _, err := s.a.registry.DeletePod(ctx, p.Namespace, p.Name, nil, &metav1.Preconditions{UID: ptr.To(p.UID)}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// put creates or updates the mirror pod of static pod p.
func (s *staticPods) put(ctx context.Context, p *corev1.Pod) error {
	p = p.DeepCopy()
	if err := registry.AdmitPod(p); err != nil {
		if s.reported[string(p.UID)] != err.Error() {
			slog.Error("static pod is invalid", "pod", p.Namespace+"/"+p.Name, "err", err)
			s.reported[string(p.UID)] = err.Error()
		}
		return nil
	}
	delete(s.reported, string(p.UID))
	p.Annotations[keys.MirrorAnnotation] = p.Annotations[keys.ConfigHashAnnotation]
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: s.a.cfg.NodeName, UID: s.a.nodeUID, Controller: ptr.To(true)}}
	obj, err := s.a.store.Get(ctx, store.Pods, p.Namespace, p.Name)
	if apierrors.IsNotFound(err) {
		p.Status = corev1.PodStatus{Phase: corev1.PodPending}
		_, err = s.a.store.Create(ctx, store.Pods, p)
		if err == nil {
			slog.Info("static pod added", "pod", p.Namespace+"/"+p.Name)
		}
		return err
	}
	if err != nil {
		return err
	}
	cur := obj.(*corev1.Pod)
	if cur.UID != p.UID {
		return fmt.Errorf("static pod %s/%s: a pod of that name, not from this manifest, exists", p.Namespace, p.Name)
	}
	if cur.DeletionTimestamp != nil || cur.Annotations[keys.MirrorAnnotation] == p.Annotations[keys.MirrorAnnotation] {
		// Unchanged; or being deleted, in which case it is created anew once it is gone.
		return nil
	}
	_, err = s.a.store.GuaranteedUpdate(ctx, store.Pods, p.Namespace, p.Name, func(obj store.Object) (store.Object, error) {
		cur := obj.(*corev1.Pod)
		if cur.UID != p.UID {
			return nil, apierrors.NewConflict(podsResource, p.Name, fmt.Errorf("pod was replaced"))
		}
		cur.Labels, cur.Annotations, cur.Spec = p.Labels, p.Annotations, p.Spec
		if cur.Status.Phase == corev1.PodSucceeded || cur.Status.Phase == corev1.PodFailed {
			// A finished static pod whose manifest changed runs again, as the kubelet does.
			cur.Status = corev1.PodStatus{Phase: corev1.PodPending}
		}
		return cur, nil
	})
	if err == nil {
		slog.Info("static pod changed", "pod", p.Namespace+"/"+p.Name)
	}
	return err
}
