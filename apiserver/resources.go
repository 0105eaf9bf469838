package apiserver

import (
	"context"
	"crypto/rand"
	"fmt"
	"reflect"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
)

func (s *Server) pods() *kind {
	return &kind{
		resource: store.Pods, name: "Pod", namespaced: true,
		newObj: func() store.Object { return &corev1.Pod{} },
		list: func(items []store.Object, rv string) any {
			return &corev1.PodList{TypeMeta: listType("PodList"), ListMeta: listMeta(rv), Items: itemsOf[corev1.Pod](items)}
		},
		create: func(ctx context.Context, obj store.Object, dryRun bool) (store.Object, error) {
			pod := obj.(*corev1.Pod)
			if pod.Annotations[keys.MirrorAnnotation] != "" && !isNode(ctx) {
				return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
					fmt.Errorf("mirror pods are made by the node from its static pod manifests"))
			}
			if dryRun {
				p := pod.DeepCopy()
				return p, registry.PreparePodForCreate(p)
			}
			return s.registry.CreatePod(ctx, pod)
		},
		update: func(cur, obj store.Object, sub string) (store.Object, error) {
			old, pod := cur.(*corev1.Pod), obj.(*corev1.Pod)
			if sub == "status" {
				old.Status = pod.Status
				return old, nil
			}
			if err := refuseMirror(old); err != nil {
				return nil, err
			}
			if err := registry.AdmitPod(pod); err != nil {
				return nil, err
			}
			if errs := validatePodUpdate(pod, old); len(errs) > 0 {
				return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, pod.Name, errs)
			}
			// What only the server sets stays as it is.
			pod.Status = old.Status
			pod.UID, pod.CreationTimestamp, pod.Generation = old.UID, old.CreationTimestamp, old.Generation
			pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = old.DeletionTimestamp, old.DeletionGracePeriodSeconds
			return pod, nil
		},
		delete: func(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) (store.Object, error) {
			obj, err := s.store.Get(ctx, store.Pods, ns, name)
			if err != nil {
				return nil, err
			}
			// The node replaces a mirror whose static pod changed, and removes one whose static
			// pod is gone; others may not.
			if err := refuseMirror(obj.(*corev1.Pod)); err != nil && !isNode(ctx) {
				return nil, err
			}
			if isDryRun(opts.DryRun) {
				// All a delete checks, nothing done.
				return obj, registry.CheckPreconditions(schema.GroupResource{Resource: "pods"}, obj, opts.Preconditions)
			}
			p, _, err := s.registry.DeletePod(ctx, ns, name, opts.GracePeriodSeconds, opts.Preconditions)
			if err != nil {
				return nil, err
			}
			return p, nil
		},
	}
}

// refuseMirror refuses to change a mirror pod: its manifest on the node defines it.
func refuseMirror(pod *corev1.Pod) error {
	if pod.Annotations[keys.MirrorAnnotation] == "" {
		return nil
	}
	return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
		fmt.Errorf("it is the mirror of a static pod (source %s): change or remove its manifest on node %s instead",
			pod.Annotations["kubernetes.io/config.source"], pod.Spec.NodeName))
}

// validatePodUpdate allows what the apiserver allows a pod's spec to change: container images,
// activeDeadlineSeconds, and added tolerations.
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	mungedSpec := old.Spec.DeepCopy()
	if len(pod.Spec.Containers) == len(mungedSpec.Containers) {
		for i := range mungedSpec.Containers {
			mungedSpec.Containers[i].Image = pod.Spec.Containers[i].Image
		}
	}
	mungedSpec.ActiveDeadlineSeconds = pod.Spec.ActiveDeadlineSeconds
	if len(pod.Spec.Tolerations) >= len(old.Spec.Tolerations) {
		mungedSpec.Tolerations = pod.Spec.Tolerations
	}
	if !reflect.DeepEqual(*mungedSpec, pod.Spec) {
		return field.ErrorList{field.Forbidden(field.NewPath("spec"),
			"pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")}
	}
	return nil
}

func (s *Server) namespaces() *kind {
	return &kind{
		resource: store.Namespaces, name: "Namespace",
		newObj: func() store.Object { return &corev1.Namespace{} },
		list: func(items []store.Object, rv string) any {
			return &corev1.NamespaceList{TypeMeta: listType("NamespaceList"), ListMeta: listMeta(rv), Items: itemsOf[corev1.Namespace](items)}
		},
		create: func(ctx context.Context, obj store.Object, dryRun bool) (store.Object, error) {
			ns := obj.(*corev1.Namespace)
			if dryRun {
				n := ns.DeepCopy()
				return n, registry.PrepareNamespaceForCreate(n)
			}
			return s.registry.CreateNamespace(ctx, ns)
		},
		update: func(cur, obj store.Object, sub string) (store.Object, error) {
			old, ns := cur.(*corev1.Namespace), obj.(*corev1.Namespace)
			if sub == "status" {
				return old, nil // the namespace controller's, not a client's
			}
			old.Labels, old.Annotations = ns.Labels, ns.Annotations
			if old.Labels == nil {
				old.Labels = map[string]string{}
			}
			old.Labels["kubernetes.io/metadata.name"] = old.Name
			return old, nil
		},
		delete: func(ctx context.Context, _, name string, opts *metav1.DeleteOptions) (store.Object, error) {
			if isDryRun(opts.DryRun) {
				// All a delete checks, nothing done.
				if err := registry.NamespaceDeletable(name); err != nil {
					return nil, err
				}
				obj, err := s.store.Get(ctx, store.Namespaces, "", name)
				if err != nil {
					return nil, err
				}
				return obj, registry.CheckPreconditions(schema.GroupResource{Resource: "namespaces"}, obj, opts.Preconditions)
			}
			return s.registry.DeleteNamespace(ctx, name, opts.Preconditions)
		},
	}
}

func (s *Server) nodes() *kind {
	return &kind{
		resource: store.Nodes, name: "Node",
		newObj: func() store.Object { return &corev1.Node{} },
		list: func(items []store.Object, rv string) any {
			return &corev1.NodeList{TypeMeta: listType("NodeList"), ListMeta: listMeta(rv), Items: itemsOf[corev1.Node](items)}
		},
		create: s.plainCreate(store.Nodes),
		delete: s.plainDelete(store.Nodes),
		update: func(cur, obj store.Object, sub string) (store.Object, error) {
			old, n := cur.(*corev1.Node), obj.(*corev1.Node)
			if sub == "status" {
				old.Status = n.Status
				return old, nil
			}
			// Labels (kubectl label node ... gpu=true), annotations, taints and cordoning are
			// the users'; the rest is the agent's, and a change to it is refused, not dropped.
			if errs := validateNodeUpdate(n, old); len(errs) > 0 {
				return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Node"}, n.Name, errs)
			}
			old.Labels, old.Annotations = n.Labels, n.Annotations
			old.Spec.Taints, old.Spec.Unschedulable = n.Spec.Taints, n.Spec.Unschedulable
			old.Spec.PodCIDR, old.Spec.PodCIDRs = n.Spec.PodCIDR, n.Spec.PodCIDRs
			return old, nil
		},
	}
}

// validateNodeUpdate allows a client to change a node's taints (valid ones) and unschedulable, the
// rest of its spec being the agent's.
func validateNodeUpdate(n, old *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	for i, t := range n.Spec.Taints {
		p := spec.Child("taints").Index(i)
		for _, msg := range validation.IsQualifiedName(t.Key) {
			errs = append(errs, field.Invalid(p.Child("key"), t.Key, msg))
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			errs = append(errs, field.Invalid(p.Child("value"), t.Value, msg))
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect,
				[]corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}))
		}
	}
	want := old.Spec.DeepCopy()
	want.Taints, want.Unschedulable = n.Spec.Taints, n.Spec.Unschedulable
	if old.Spec.PodCIDR == "" {
		// Set once, as the apiserver allows: by the node at registration or an allocator after.
		want.PodCIDR, want.PodCIDRs = n.Spec.PodCIDR, n.Spec.PodCIDRs
	}
	if !apiequality.Semantic.DeepEqual(*want, n.Spec) {
		errs = append(errs, field.Forbidden(spec, "node updates may only change spec.taints and spec.unschedulable"))
	}
	return errs
}

func (s *Server) events() *kind {
	return &kind{
		resource: store.Events, name: "Event", namespaced: true,
		newObj: func() store.Object { return &corev1.Event{} },
		list: func(items []store.Object, rv string) any {
			return &corev1.EventList{TypeMeta: listType("EventList"), ListMeta: listMeta(rv), Items: itemsOf[corev1.Event](items)}
		},
		create: s.plainCreate(store.Events),
		update: plainUpdate,
		delete: s.plainDelete(store.Events),
	}
}

// leases are coordination.k8s.io/v1 Leases: the node's heartbeat in kube-node-lease.
func (s *Server) leases() *kind {
	return &kind{
		resource: store.Leases, name: "Lease", namespaced: true, gv: coordinationv1.SchemeGroupVersion,
		newObj: func() store.Object { return &coordinationv1.Lease{} },
		list: func(items []store.Object, rv string) any {
			return &coordinationv1.LeaseList{TypeMeta: metav1.TypeMeta{Kind: "LeaseList", APIVersion: coordinationv1.SchemeGroupVersion.String()},
				ListMeta: listMeta(rv), Items: itemsOf[coordinationv1.Lease](items)}
		},
		create: s.plainCreate(store.Leases),
		update: plainUpdate,
		delete: s.plainDelete(store.Leases),
	}
}

// plainCreate stores a new object of a resource that has no rules of its own beyond the generic
// ones (names, namespaces) the handlers check.
func (s *Server) plainCreate(resource string) func(context.Context, store.Object, bool) (store.Object, error) {
	return func(ctx context.Context, obj store.Object, dryRun bool) (store.Object, error) {
		if dryRun {
			return obj, nil
		}
		return s.store.Create(ctx, resource, obj)
	}
}

// plainUpdate takes the client's object whole (status included: such resources have none apart).
func plainUpdate(_, obj store.Object, _ string) (store.Object, error) { return obj, nil }

// plainDelete removes an object at once: the resource has no graceful deletion.
func (s *Server) plainDelete(resource string) func(context.Context, string, string, *metav1.DeleteOptions) (store.Object, error) {
	return func(ctx context.Context, ns, name string, opts *metav1.DeleteOptions) (store.Object, error) {
		if isDryRun(opts.DryRun) {
			obj, err := s.store.Get(ctx, resource, ns, name)
			if err != nil {
				return nil, err
			}
			return obj, registry.CheckPreconditions(store.GroupResource(resource), obj, opts.Preconditions)
		}
		return s.store.Delete(ctx, resource, ns, name, opts.Preconditions)
	}
}

// randomSuffix is generateName's random part: five characters the apiserver would use.
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func listType(kind string) metav1.TypeMeta { return metav1.TypeMeta{Kind: kind, APIVersion: "v1"} }

func listMeta(rv string) metav1.ListMeta { return metav1.ListMeta{ResourceVersion: rv} }

// itemsOf is a typed list's items: never nil, so that JSON shows [] for an empty list.
func itemsOf[T any](objs []store.Object) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		out = append(out, *any(o).(*T))
	}
	return out
}
