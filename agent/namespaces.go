package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
)

// finishNamespaceDeletion does the namespace controller's work for a Terminating namespace: it
// deletes the namespace's pods gracefully and, once none is left, the namespace itself. Static
// pods are not the namespace's to delete (their manifest defines them), so they do not hold it up.
func (a *Agent) finishNamespaceDeletion(ctx context.Context, ns *corev1.Namespace) error {
	objs, _, err := a.store.List(ctx, store.Pods, ns.Name)
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
		if _, _, err := a.registry.DeletePod(ctx, p.Namespace, p.Name, nil, &metav1.Preconditions{UID: ptr.To(p.UID)}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if left > 0 || len(errs) > 0 {
		return errors.Join(errs...)
	}
	_, err = a.store.Delete(ctx, store.Namespaces, "", ns.Name, &metav1.Preconditions{UID: ptr.To(ns.UID)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove namespace %s: %w", ns.Name, err)
	}
	slog.Info("namespace deleted", "namespace", ns.Name)
	return nil
}

// syncNamespaces finishes the deletion of every Terminating namespace.
func (a *Agent) syncNamespaces(ctx context.Context) error {
	objs, _, err := a.store.List(ctx, store.Namespaces, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range objs {
		if ns := obj.(*corev1.Namespace); ns.DeletionTimestamp != nil {
			errs = append(errs, a.finishNamespaceDeletion(ctx, ns))
		}
	}
	return errors.Join(errs...)
}
