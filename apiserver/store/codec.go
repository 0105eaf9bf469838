package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Object is what the store keeps: a typed Kubernetes object with metadata.
// Both halves are needed: metav1.Object for keys, uid and resourceVersion,
// runtime.Object for DeepCopyObject and the GroupVersionKind that kubectl
// expects to find in served JSON.
type Object interface {
	metav1.Object
	runtime.Object
}

// Resource names, as they appear in API paths.
const (
	Pods       = "pods"
	Namespaces = "namespaces"
	Nodes      = "nodes"
	Events     = "events"
	Leases     = "leases"
)

// resourceInfo describes one stored resource. The table is returned by a
// function instead of living in a package variable so the package has no
// mutable globals.
type resourceInfo struct {
	gr         schema.GroupResource
	gvk        schema.GroupVersionKind
	namespaced bool
	newObj     func() Object
}

func lookupResource(resource string) (resourceInfo, error) {
	core := func(kind string) schema.GroupVersionKind {
		return corev1.SchemeGroupVersion.WithKind(kind)
	}
	switch resource {
	case Pods:
		return resourceInfo{corev1.Resource(Pods), core("Pod"), true, func() Object { return &corev1.Pod{} }}, nil
	case Namespaces:
		return resourceInfo{corev1.Resource(Namespaces), core("Namespace"), false, func() Object { return &corev1.Namespace{} }}, nil
	case Nodes:
		return resourceInfo{corev1.Resource(Nodes), core("Node"), false, func() Object { return &corev1.Node{} }}, nil
	case Events:
		return resourceInfo{corev1.Resource(Events), core("Event"), true, func() Object { return &corev1.Event{} }}, nil
	case Leases:
		return resourceInfo{coordinationv1.Resource(Leases), coordinationv1.SchemeGroupVersion.WithKind("Lease"), true,
			func() Object { return &coordinationv1.Lease{} }}, nil
	}
	return resourceInfo{}, apierrors.NewBadRequest(fmt.Sprintf("unknown resource %q", resource))
}

// GroupResource names resource in errors; an unknown resource gets its name alone.
func GroupResource(resource string) schema.GroupResource {
	ri, err := lookupResource(resource)
	if err != nil {
		return schema.GroupResource{Resource: resource}
	}
	return ri.gr
}

// checkType makes sure obj is the Go type stored under the resource, so a
// Node can never land in the pods bucket and fail to decode later.
func (ri resourceInfo) checkType(obj Object) error {
	want := ri.newObj()
	if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", obj) {
		return apierrors.NewBadRequest(fmt.Sprintf("%s: expected %T, got %T", ri.gr, want, obj))
	}
	return nil
}

// encode stores the object with apiVersion/kind filled in: the JSON is later
// served as-is to kubectl, which relies on them.
func (ri resourceInfo) encode(obj Object) ([]byte, error) {
	obj.GetObjectKind().SetGroupVersionKind(ri.gvk)
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", ri.gr, keyString(obj.GetNamespace(), obj.GetName()), err)
	}
	return data, nil
}

func (ri resourceInfo) decode(key, data []byte) (Object, error) {
	obj := ri.newObj()
	if err := json.Unmarshal(data, obj); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", ri.gr, key, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(ri.gvk)
	return obj, nil
}

// specChanged reports whether the "spec" field differs between two encodings.
// Generation tracks spec changes only (metadata and status updates must not
// bump it), as in the apiserver. Both sides come from the same encoder, so a
// byte comparison of the raw field is exact.
func specChanged(oldData, newData []byte) (bool, error) {
	var o, n struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(oldData, &o); err != nil {
		return false, err
	}
	if err := json.Unmarshal(newData, &n); err != nil {
		return false, err
	}
	return string(o.Spec) != string(n.Spec), nil
}

func formatRV(rv uint64) string { return strconv.FormatUint(rv, 10) }

func parseRV(s string) (uint64, error) {
	rv, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", s))
	}
	return rv, nil
}

func keyString(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
