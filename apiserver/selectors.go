package apiserver

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/podagent/podagent/apiserver/store"
)

// filter is a list's or watch's label and field selectors.
type filter struct {
	labels labels.Selector
	fields fields.Selector
}

// newFilter is the selectors of a list's or watch's options (parsed by listOptions, a selector
// that does not parse being 400 there), allowing the fields the apiserver allows for each
// resource.
func newFilter(opts *internalversion.ListOptions, resource string) (filter, error) {
	f := filter{labels: labels.Everything(), fields: fields.Everything()}
	if opts.LabelSelector != nil {
		f.labels = opts.LabelSelector
	}
	if opts.FieldSelector != nil {
		f.fields = opts.FieldSelector
		for _, req := range f.fields.Requirements() {
			if _, ok := fieldSet(resource, nil)[req.Field]; !ok {
				return f, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	return f, nil
}

// fieldSet is the fields of obj that field selectors may name; with obj nil, the names alone.
func fieldSet(resource string, obj store.Object) fields.Set {
	set := fields.Set{"metadata.name": "", "metadata.namespace": ""}
	if obj != nil {
		set["metadata.name"], set["metadata.namespace"] = obj.GetName(), obj.GetNamespace()
	}
	switch resource {
	case store.Pods:
		set["spec.nodeName"], set["status.phase"], set["spec.restartPolicy"], set["status.podIP"] = "", "", "", ""
		if p, ok := obj.(*corev1.Pod); ok {
			set["spec.nodeName"], set["status.phase"] = p.Spec.NodeName, string(p.Status.Phase)
			set["spec.restartPolicy"], set["status.podIP"] = string(p.Spec.RestartPolicy), p.Status.PodIP
		}
	case store.Namespaces:
		set["status.phase"] = ""
		if n, ok := obj.(*corev1.Namespace); ok {
			set["status.phase"] = string(n.Status.Phase)
		}
	case store.Events:
		for _, f := range []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
			"involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "type",
			"source", "reportingComponent"} {
			set[f] = ""
		}
		if e, ok := obj.(*corev1.Event); ok {
			io := e.InvolvedObject
			set["involvedObject.kind"], set["involvedObject.namespace"], set["involvedObject.name"] = io.Kind, io.Namespace, io.Name
			set["involvedObject.uid"], set["involvedObject.apiVersion"] = string(io.UID), io.APIVersion
			set["involvedObject.resourceVersion"], set["involvedObject.fieldPath"] = io.ResourceVersion, io.FieldPath
			set["reason"], set["type"], set["source"], set["reportingComponent"] = e.Reason, e.Type, e.Source.Component, e.ReportingController
		}
	case store.Nodes:
		set["spec.unschedulable"] = ""
		if n, ok := obj.(*corev1.Node); ok {
			set["spec.unschedulable"] = fmt.Sprint(n.Spec.Unschedulable)
		}
	}
	return set
}

// transition is how a store event shows to a watch with f: a change that brings an object into
// the selection is ADDED, one that takes it out DELETED (as the apiserver's cacher sends them), and
// one outside it is not sent (ok false).
func (f filter) transition(resource string, ev store.Event) (typ watch.EventType, ok bool) {
	now := f.matches(resource, ev.Object)
	if ev.Type != watch.Modified || ev.Prev == nil {
		return ev.Type, now
	}
	before := f.matches(resource, ev.Prev)
	switch {
	case now && !before:
		return watch.Added, true
	case !now && before:
		return watch.Deleted, true
	}
	return ev.Type, now
}

func (f filter) matches(resource string, obj store.Object) bool {
	return f.labels.Matches(labels.Set(obj.GetLabels())) && f.fields.Matches(fieldSet(resource, obj))
}
