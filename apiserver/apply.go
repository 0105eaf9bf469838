package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/podagent/podagent/apiserver/store"
)

// Server-side apply and the managedFields of every write are the kube-apiserver's own code:
// k8s.io/apimachinery's managedfields FieldManager, merging by the kinds' OpenAPI schemas (list-map
// keys, atomic structs, defaults of key fields such as a container port's protocol), as the
// apiserver's patch, create and update handlers call it.

// fieldManagerKey names the field manager of a kind's resource or subresource ("" or "status").
type fieldManagerKey struct{ kind, subresource string }

// managedKinds are the kinds whose writes are tracked: those clients may create or change.
var managedKinds = []string{"Pod", "Namespace", "Node"}

// newFieldManagers returns a field manager for each managed kind and subresource. The type
// converter is built from the OpenAPI v3 schemas the server embeds, as the kube-apiserver builds
// its own: the v2 definitions lack the defaults of list-map keys (a container port without a
// protocol, which kubectl users leave out, would fail to merge).
func newFieldManagers(scheme *runtime.Scheme) (map[fieldManagerKey]*managedfields.FieldManager, error) {
	v3JSON, err := gunzip(openAPIV3Gzip)
	if err != nil {
		return nil, fmt.Errorf("decompress OpenAPI v3 document: %w", err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]*spec.Schema `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(v3JSON, &doc); err != nil {
		return nil, fmt.Errorf("parse OpenAPI v3 schemas: %w", err)
	}
	tc, err := managedfields.NewTypeConverter(doc.Components.Schemas, false)
	if err != nil {
		return nil, fmt.Errorf("build the type converter of the OpenAPI v3 schemas: %w", err)
	}
	out := map[fieldManagerKey]*managedfields.FieldManager{}
	for _, kind := range managedKinds {
		gvk := corev1.SchemeGroupVersion.WithKind(kind)
		for _, sub := range []string{"", "status"} {
			// v1 is both the version served and the hub: the scheme converts, defaults (nothing:
			// the registry defaults) and creates v1 objects only.
			fm, err := managedfields.NewDefaultFieldManager(tc, scheme, scheme, scheme, gvk, gvk.GroupVersion(), sub, resetFields(sub))
			if err != nil {
				return nil, fmt.Errorf("field manager of %s %q: %w", kind, sub, err)
			}
			out[fieldManagerKey{kind, sub}] = fm
		}
	}
	return out, nil
}

// resetFields are the fields a write through the resource or subresource cannot change (the
// update keeps the stored ones), which nobody is therefore recorded as owning, as the apiserver's
// strategies' GetResetFields: the status through the resource, the spec through status.
func resetFields(sub string) map[fieldpath.APIVersion]fieldpath.Filter {
	reset := "status"
	if sub == "status" {
		reset = "spec"
	}
	return map[fieldpath.APIVersion]fieldpath.Filter{
		"v1": fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie(reset))),
	}
}

// fieldManager is k's field manager for sub, nil for a kind whose writes are not tracked.
func (s *Server) fieldManager(k *kind, sub string) *managedfields.FieldManager {
	return s.fieldManagers[fieldManagerKey{k.name, sub}]
}

// trackUpdate records in obj's managedFields the fields manager changed from live (an empty
// object for a create), as the apiserver's create, update and non-apply patch handlers do.
func (s *Server) trackUpdate(k *kind, sub string, live, obj store.Object, manager string) store.Object {
	fm := s.fieldManager(k, sub)
	if fm == nil {
		return obj
	}
	if out, ok := fm.UpdateNoErrors(live, obj, manager).(store.Object); ok {
		return out
	}
	return obj
}

// managerOrUserAgent is the manager a write is recorded for: the fieldManager asked for, else,
// as the apiserver's, the User-Agent up to its first "/" ("kubectl" for kubectl/v1.33.0 ...),
// printable characters only and at most as long as a fieldManager may be.
func managerOrUserAgent(manager, userAgent string) string {
	if manager != "" {
		return manager
	}
	var buf bytes.Buffer
	for _, r := range strings.Split(userAgent, "/")[0] {
		if !unicode.IsPrint(r) {
			continue
		}
		if buf.Len()+utf8.RuneLen(r) > metav1validation.FieldManagerMaxLength {
			break
		}
		buf.WriteRune(r)
	}
	return buf.String()
}

// apply serves a server-side apply patch (application/apply-patch+yaml): the applied
// configuration merged into the object by field ownership, or a new object made of it when there
// is none. The object then goes through the checks and admission of an update or a create.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, k *kind, sub string, opts *metav1.PatchOptions, patch []byte) {
	fm := s.fieldManager(k, sub)
	if fm == nil {
		writeError(w, unsupportedPatchType(k))
		return
	}
	// A body that is not YAML is refused before anything is looked up, as the apiserver's
	// validateAndTranscodePatch does.
	if _, err := utilyaml.ToJSON(patch); err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("error encoding patch: %v", err)))
		return
	}
	patchObj := &unstructured.Unstructured{Object: map[string]any{}}
	if err := utilyaml.Unmarshal(patch, &patchObj.Object); err != nil {
		writeError(w, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err)))
		return
	}
	force := ptr.Deref(opts.Force, false)
	validation := opts.FieldValidation
	if validation == "" {
		validation = metav1.FieldValidationWarn
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	applyTo := func(live store.Object) (store.Object, error) {
		out, err := fm.Apply(live, patchObj.DeepCopy(), opts.FieldManager, force)
		if err != nil {
			return nil, applyError(err)
		}
		// Unknown fields are already refused by the schema; duplicate keys are what strict
		// decoding finds, as the apiserver's applyPatcher checks after merging.
		if validation != metav1.FieldValidationIgnore {
			if err := utilyaml.UnmarshalStrict(patch, &map[string]any{}); err != nil {
				if validation == metav1.FieldValidationStrict {
					return nil, apierrors.NewBadRequest(fmt.Sprintf("error strict decoding patch: %v", err))
				}
				w.Header().Add("Warning", fmt.Sprintf(`299 - %q`, err.Error()))
			}
		}
		obj, ok := out.(store.Object)
		if !ok {
			return nil, fmt.Errorf("apply to %s %s/%s: merged object is a %T", k.name, ns, name, out)
		}
		if err := checkName(obj, k, ns, name); err != nil {
			return nil, err
		}
		obj.SetNamespace(ns) // a cluster-scoped object's is cleared, as the apiserver does
		return obj, nil
	}
	dryRun := isDryRun(opts.DryRun)
	for try := 1; ; try++ {
		updated, err := s.update(r.Context(), k, ns, name, sub, dryRun, "", applyTo)
		if !apierrors.IsNotFound(err) || sub != "" || k.create == nil {
			respond(w, http.StatusOK, updated, k, err)
			return
		}
		created, err := s.applyCreate(r.Context(), k, ns, dryRun, applyTo)
		if apierrors.IsAlreadyExists(err) && try < 3 {
			continue // made meanwhile: apply to it
		}
		respond(w, http.StatusCreated, created, k, err)
		return
	}
}

// applyCreate makes the object an apply to a missing one describes, through what a create goes
// through.
func (s *Server) applyCreate(ctx context.Context, k *kind, ns string, dryRun bool, applyTo func(store.Object) (store.Object, error)) (store.Object, error) {
	obj, err := applyTo(k.newObj())
	if err != nil {
		return nil, err
	}
	if uid := obj.GetUID(); uid != "" {
		return nil, apierrors.NewConflict(k.gr(), obj.GetName(), fmt.Errorf("uid mismatch: the provided object specified uid %s, and no existing object was found", uid))
	}
	if k.namespaced {
		if err := s.namespaceAccepts(ctx, ns); err != nil {
			return nil, err
		}
	}
	// What the server sets is the server's, whatever the client sent.
	obj.SetCreationTimestamp(metav1.Time{})
	obj.SetResourceVersion("")
	obj.SetGeneration(0)
	return k.create(ctx, obj, dryRun)
}

// applyError is the status of a failed apply. The managedfields library reports an applied
// object its schema does not describe (.spec.foo: field not declared in schema) as a plain error,
// which the kube-apiserver answers with 500; it is the client's mistake, so 400 here, the
// message unchanged (as kubernetes/kubernetes#139253 asks of the apiserver).
func applyError(err error) error {
	if _, ok := err.(apierrors.APIStatus); ok {
		return err
	}
	if strings.HasPrefix(err.Error(), "failed to create typed patch object") {
		return apierrors.NewBadRequest(err.Error())
	}
	return err
}

// unsupportedPatchType is the apiserver's 415 for a patch of a media type it does not take.
func unsupportedPatchType(k *kind) error {
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", k.gr(), "",
		"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json", 0, false)
}
