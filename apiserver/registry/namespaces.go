package registry

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/store"
)

// DefaultNamespaces are the namespaces a new cluster has.
var DefaultNamespaces = []string{
	metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease,
}

// immortalNamespaces are refused deletion, as the NamespaceLifecycle admission plugin does.
var immortalNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic}

// labelMetadataName is the label the apiserver puts on every namespace, naming it.
const labelMetadataName = "kubernetes.io/metadata.name"

var (
	namespaceKind      = schema.GroupKind{Kind: "Namespace"}
	namespacesResource = schema.GroupResource{Resource: "namespaces"}
)

// PrepareNamespaceForCreate defaults and validates a new namespace as the apiserver does.
func PrepareNamespaceForCreate(ns *corev1.Namespace) error {
	ns.Namespace = ""
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[labelMetadataName] = ns.Name
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	}
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	ns.DeletionTimestamp, ns.DeletionGracePeriodSeconds = nil, nil
	errs := apivalidation.ValidateObjectMeta(&ns.ObjectMeta, false, apivalidation.ValidateNamespaceName, field.NewPath("metadata"))
	if len(errs) > 0 {
		return apierrors.NewInvalid(namespaceKind, ns.Name, errs)
	}
	return nil
}

// CreateNamespace admits ns and stores it.
func (r *Registry) CreateNamespace(ctx context.Context, ns *corev1.Namespace) (*corev1.Namespace, error) {
	ns = ns.DeepCopy()
	if err := PrepareNamespaceForCreate(ns); err != nil {
		return nil, err
	}
	obj, err := r.store.Create(ctx, store.Namespaces, ns)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Namespace), nil
}

// EnsureDefaultNamespaces creates the default namespaces that do not exist.
func (r *Registry) EnsureDefaultNamespaces(ctx context.Context) error {
	for _, name := range DefaultNamespaces {
		_, err := r.CreateNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	return nil
}

// NamespaceDeletable refuses the deletion of the namespaces a cluster cannot do without.
func NamespaceDeletable(name string) error {
	if slices.Contains(immortalNamespaces, name) {
		return apierrors.NewForbidden(namespacesResource, name, fmt.Errorf("this namespace may not be deleted"))
	}
	return nil
}

// DeleteNamespace marks a namespace Terminating; the agent's namespace controller then deletes its
// pods and, once they are gone, the namespace.
func (r *Registry) DeleteNamespace(ctx context.Context, name string, precond *metav1.Preconditions) (*corev1.Namespace, error) {
	if err := NamespaceDeletable(name); err != nil {
		return nil, err
	}
	obj, err := r.store.GuaranteedUpdate(ctx, store.Namespaces, "", name, func(cur store.Object) (store.Object, error) {
		ns := cur.(*corev1.Namespace)
		if err := CheckPreconditions(namespacesResource, ns, precond); err != nil {
			return nil, err
		}
		if ns.DeletionTimestamp == nil {
			ns.DeletionTimestamp = ptr.To(metav1.NewTime(r.now()))
			ns.DeletionGracePeriodSeconds = ptr.To[int64](0)
		}
		ns.Status.Phase = corev1.NamespaceTerminating
		return ns, nil
	})
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Namespace), nil
}
