package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
)

// kind is what the generic handlers need to know about one resource.
type kind struct {
	resource   string
	name       string
	namespaced bool
	// gv is the group and version served; the zero value is the core group's v1.
	gv     schema.GroupVersion
	newObj func() store.Object
	// list wraps items in the resource's typed list.
	list func(items []store.Object, rv string) any
	// create admits a new object and stores it.
	create func(ctx context.Context, obj store.Object, dryRun bool) (store.Object, error)
	// update admits a changed object given the stored one (status, when subresource is "status").
	update func(cur, obj store.Object, subresource string) (store.Object, error)
	// delete deletes, gracefully where the resource has it.
	delete func(ctx context.Context, namespace, name string, opts *metav1.DeleteOptions) (store.Object, error)
}

func (k *kind) gr() schema.GroupResource {
	return schema.GroupResource{Group: k.gv.Group, Resource: k.resource}
}

func (k *kind) gvk() schema.GroupVersionKind {
	if k.gv.Empty() {
		return corev1.SchemeGroupVersion.WithKind(k.name)
	}
	return k.gv.WithKind(k.name)
}

// prefix is the path under which k's group and version are served.
func (k *kind) prefix() string {
	if k.gv.Empty() {
		return "/api/v1"
	}
	return "/apis/" + k.gv.Group + "/" + k.gv.Version
}

func (s *Server) register(k *kind) {
	p := k.prefix()
	coll, item := p+"/"+k.resource, p+"/"+k.resource+"/{name}"
	if k.namespaced {
		s.mux.HandleFunc("GET "+p+"/"+k.resource, func(w http.ResponseWriter, r *http.Request) { s.listOrWatch(w, r, k, "") })
		coll, item = p+"/namespaces/{namespace}/"+k.resource, p+"/namespaces/{namespace}/"+k.resource+"/{name}"
	}
	s.mux.HandleFunc("GET "+coll, func(w http.ResponseWriter, r *http.Request) {
		s.listOrWatch(w, r, k, r.PathValue("namespace"))
	})
	s.mux.HandleFunc("GET "+item, func(w http.ResponseWriter, r *http.Request) { s.get(w, r, k) })
	if k.create != nil {
		s.mux.HandleFunc("POST "+coll, func(w http.ResponseWriter, r *http.Request) { s.create(w, r, k) })
	}
	if k.update != nil {
		s.mux.HandleFunc("PUT "+item, func(w http.ResponseWriter, r *http.Request) { s.put(w, r, k, "") })
		s.mux.HandleFunc("PATCH "+item, func(w http.ResponseWriter, r *http.Request) { s.patch(w, r, k, "") })
		s.mux.HandleFunc("GET "+item+"/status", func(w http.ResponseWriter, r *http.Request) { s.get(w, r, k) })
		s.mux.HandleFunc("PUT "+item+"/status", func(w http.ResponseWriter, r *http.Request) { s.put(w, r, k, "status") })
		s.mux.HandleFunc("PATCH "+item+"/status", func(w http.ResponseWriter, r *http.Request) { s.patch(w, r, k, "status") })
	}
	if k.delete != nil {
		s.mux.HandleFunc("DELETE "+item, func(w http.ResponseWriter, r *http.Request) { s.delete(w, r, k) })
		s.mux.HandleFunc("DELETE "+coll, func(w http.ResponseWriter, r *http.Request) { s.deleteCollection(w, r, k) })
	}
}

// respond writes obj with its kind set, or err as a Status.
func respond(w http.ResponseWriter, code int, obj store.Object, k *kind, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	setKind(obj, k)
	writeJSON(w, code, obj)
}

func setKind(obj store.Object, k *kind) {
	obj.GetObjectKind().SetGroupVersionKind(k.gvk())
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, k *kind) {
	obj, err := s.store.Get(r.Context(), k.resource, r.PathValue("namespace"), r.PathValue("name"))
	if err == nil && wantsTable(r) {
		writeJSON(w, http.StatusOK, toTable(k.resource, []store.Object{obj}, obj.GetResourceVersion(), time.Now()))
		return
	}
	respond(w, http.StatusOK, obj, k, err)
}

// listFilter reads a list's (or watch's or collection delete's) options and their selectors.
func listFilter(r *http.Request, k *kind) (*internalversion.ListOptions, filter, error) {
	opts, err := listOptions(r)
	if err != nil {
		return nil, filter{}, err
	}
	f, err := newFilter(opts, k.resource)
	return opts, f, err
}

func (s *Server) listOrWatch(w http.ResponseWriter, r *http.Request, k *kind, namespace string) {
	opts, f, err := listFilter(r, k)
	if err != nil {
		writeError(w, err)
		return
	}
	if opts.Watch {
		s.watch(w, r, k, namespace, opts, f)
		return
	}
	objs, rv, err := s.store.List(r.Context(), k.resource, namespace)
	if err != nil {
		writeError(w, err)
		return
	}
	items := objs[:0]
	for _, obj := range objs {
		if f.matches(k.resource, obj) {
			setKind(obj, k)
			items = append(items, obj)
		}
	}
	if wantsTable(r) {
		writeJSON(w, http.StatusOK, toTable(k.resource, items, rv, time.Now()))
		return
	}
	writeJSON(w, http.StatusOK, k.list(items, rv))
}

// watchEvent is one line of a watch stream.
type watchEvent struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

// watch streams changes after the resourceVersion asked for (or, with none, the current objects
// as ADDED first, as the apiserver does), one JSON event a line, until the client goes or
// timeoutSeconds pass. A resourceVersion too old for the store's history gets an ERROR event
// with 410 Expired, after which clients list again.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k *kind, namespace string, opts *internalversion.ListOptions, f filter) {
	ctx := r.Context()
	if t := opts.TimeoutSeconds; t != nil && *t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*t)*time.Second)
		defer cancel()
	}
	table := wantsTable(r)
	rv := opts.ResourceVersion
	var initial []store.Object
	// A watch list (sendInitialEvents, which client-go's informers ask for first) starts with
	// the current objects whatever its resourceVersion, and says where they end with a bookmark.
	watchList := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	if rv == "" || rv == "0" || watchList {
		objs, listRV, err := s.store.List(ctx, k.resource, namespace)
		if err != nil {
			writeError(w, err)
			return
		}
		initial, rv = objs, listRV
	}
	ch, err := s.store.Watch(ctx, k.resource, namespace, rv)
	if err != nil && !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() {
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
	}
	send := func(typ watch.EventType, obj store.Object) bool {
		setKind(obj, k)
		var out any = obj
		if table {
			out = toTable(k.resource, []store.Object{obj}, obj.GetResourceVersion(), time.Now())
		}
		if err := enc.Encode(watchEvent{Type: typ, Object: out}); err != nil {
			return false
		}
		flush()
		return true
	}
	if err != nil {
		// Expired or Gone, checked above: both are status errors (possibly wrapped).
		var status apierrors.APIStatus
		errors.As(err, &status)
		st := status.Status()
		st.Kind, st.APIVersion = "Status", "v1"
		_ = enc.Encode(watchEvent{Type: watch.Error, Object: st})
		flush()
		return
	}
	flush()
	for _, obj := range initial {
		if f.matches(k.resource, obj) && !send(watch.Added, obj) {
			return
		}
	}
	if watchList {
		end := k.newObj()
		end.SetResourceVersion(rv)
		end.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		if !send(watch.Bookmark, end) {
			return
		}
	}
	for ev := range ch {
		typ, ok := f.transition(k.resource, ev)
		if ok && !send(typ, ev.Object) {
			return
		}
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, k *kind) {
	opts, err := createOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.decodeBody(w, r, k, opts.FieldValidation)
	if err != nil {
		writeError(w, err)
		return
	}
	if k.namespaced {
		ns := r.PathValue("namespace")
		if obj.GetNamespace() != "" && obj.GetNamespace() != ns {
			writeError(w, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
			return
		}
		obj.SetNamespace(ns)
		if err := s.namespaceAccepts(r.Context(), ns); err != nil {
			writeError(w, err)
			return
		}
	}
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		obj.SetName(obj.GetGenerateName() + randomSuffix())
	}
	if obj.GetName() == "" {
		writeError(w, apierrors.NewInvalid(k.gvk().GroupKind(), "", field.ErrorList{
			field.Required(field.NewPath("metadata", "name"), "name or generateName is required")}))
		return
	}
	// What the server sets is the server's, whatever the client sent; except that a node's
	// mirror pod keeps the UID of the static pod it shows, so that the API and the node (its
	// containers, its log directory /var/log/pods/NS_NAME_UID) name the pod alike.
	if !(isNode(r.Context()) && obj.GetAnnotations()[keys.MirrorAnnotation] != "") {
		obj.SetUID("")
	}
	obj.SetCreationTimestamp(metav1.Time{})
	obj.SetResourceVersion("")
	obj.SetGeneration(0)
	obj = s.trackUpdate(k, "", k.newObj(), obj, managerOrUserAgent(opts.FieldManager, r.UserAgent()))
	created, err := k.create(r.Context(), obj, isDryRun(opts.DryRun))
	respond(w, http.StatusCreated, created, k, err)
}

// decodeBody reads the request's body (bounded) and decodes it as a new object of kind k, with
// the request's fieldValidation.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, k *kind, fieldValidation string) (store.Object, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	obj := k.newObj()
	if err := s.codecs.decode(w, r, body, obj, k.gvk(), fieldValidation); err != nil {
		return nil, err
	}
	return obj, nil
}

// namespaceAccepts refuses new content in a namespace that is missing or being deleted, as the
// NamespaceLifecycle admission plugin does.
func (s *Server) namespaceAccepts(ctx context.Context, ns string) error {
	obj, err := s.store.Get(ctx, store.Namespaces, "", ns)
	if err != nil {
		return err
	}
	if obj.(*corev1.Namespace).DeletionTimestamp != nil {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, k *kind, sub string) {
	opts, err := updateOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.decodeBody(w, r, k, opts.FieldValidation)
	if err != nil {
		writeError(w, err)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if err := checkName(obj, k, ns, name); err != nil {
		writeError(w, err)
		return
	}
	obj.SetNamespace(ns)
	manager := managerOrUserAgent(opts.FieldManager, r.UserAgent())
	updated, err := s.update(r.Context(), k, ns, name, sub, isDryRun(opts.DryRun), manager, func(cur store.Object) (store.Object, error) {
		// The client's uid and resourceVersion are preconditions, as the apiserver's: a PUT of
		// an object read before it was deleted and made again must not replace the new one.
		if uid := obj.GetUID(); uid != "" && uid != cur.GetUID() {
			return nil, apierrors.NewConflict(k.gr(), name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, cur.GetUID()))
		}
		if rv := obj.GetResourceVersion(); rv != "" && rv != cur.GetResourceVersion() {
			return nil, apierrors.NewConflict(k.gr(), name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		return obj.DeepCopyObject().(store.Object), nil
	})
	respond(w, http.StatusOK, updated, k, err)
}

// checkName refuses a body whose name or namespace is not the URL's, as the apiserver's checkName.
func checkName(obj store.Object, k *kind, ns, name string) error {
	if obj.GetName() != name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", obj.GetName(), name))
	}
	if k.namespaced && obj.GetNamespace() != "" && obj.GetNamespace() != ns {
		return apierrors.NewBadRequest(fmt.Sprintf("the namespace of the object (%s) does not match the namespace on the request (%s)", obj.GetNamespace(), ns))
	}
	return nil
}

// update stores the change next makes to the current object, through the checks every update
// gets (metadata the client may not change) and the resource's admission, recording the fields
// manager changed in managedFields (manager "" when next records them itself, as apply does). A
// dry run stops short of storing it.
func (s *Server) update(ctx context.Context, k *kind, ns, name, sub string, dryRun bool, manager string, next func(cur store.Object) (store.Object, error)) (store.Object, error) {
	fn := func(cur store.Object) (store.Object, error) {
		obj, err := next(cur.DeepCopyObject().(store.Object))
		if err != nil {
			return nil, err
		}
		if err := checkMetaUpdate(k, obj, cur); err != nil {
			return nil, err
		}
		out, err := k.update(cur.DeepCopyObject().(store.Object), obj, sub)
		if err != nil {
			return nil, err
		}
		// k.update may build the result on the stored object (namespaces, nodes) or keep it whole
		// (a status write): the managed fields are still the request's.
		out.SetManagedFields(obj.GetManagedFields())
		if manager != "" {
			// Recorded from what is stored, not what was asked: a field the update kept as it
			// was is not the manager's.
			out = s.trackUpdate(k, sub, cur, out, manager)
		}
		return out, nil
	}
	if dryRun {
		cur, err := s.store.Get(ctx, k.resource, ns, name)
		if err != nil {
			return nil, err
		}
		return fn(cur)
	}
	return s.store.GuaranteedUpdate(ctx, k.resource, ns, name, fn)
}

// checkMetaUpdate does what the apiserver's rest.BeforeUpdate does to the metadata of any update:
// the server's fields (creationTimestamp, generation) stay the server's, an empty uid is the
// stored one, and uid, name, namespace and the deletion fields may not change (422 naming the
// field); labels, annotations and the rest must be valid.
func checkMetaUpdate(k *kind, obj, cur store.Object) error {
	if obj.GetUID() == "" {
		obj.SetUID(cur.GetUID())
	}
	obj.SetCreationTimestamp(cur.GetCreationTimestamp())
	obj.SetGeneration(cur.GetGeneration())
	obj.SetResourceVersion(cur.GetResourceVersion())
	metaPath := field.NewPath("metadata")
	errs := apivalidation.ValidateObjectMetaAccessorUpdate(obj, cur, metaPath)
	errs = append(errs, apivalidation.ValidateObjectMetaAccessor(obj, k.namespaced, path.ValidatePathSegmentName, metaPath)...)
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Kind: k.name}, obj.GetName(), errs)
	}
	return nil
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, k *kind, sub string) {
	ctype := r.Header.Get("Content-Type")
	if i := strings.Index(ctype, ";"); i >= 0 {
		ctype = ctype[:i]
	}
	ctype = strings.TrimSpace(ctype)
	switch types.PatchType(ctype) {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType:
	default:
		// Apply as CBOR (application/apply-patch+cbor) among the rest: refused whole, never
		// taken for another kind of patch.
		writeError(w, unsupportedPatchType(k))
		return
	}
	opts, err := patchOptions(r, types.PatchType(ctype))
	if err != nil {
		writeError(w, err)
		return
	}
	patch, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if ctype == string(types.ApplyYAMLPatchType) {
		s.apply(w, r, k, sub, opts, patch)
		return
	}
	if !json.Valid(patch) {
		writeError(w, apierrors.NewBadRequest("invalid JSON patch"))
		return
	}
	var jsonPatch jsonpatch.Patch
	if ctype == string(types.JSONPatchType) {
		if jsonPatch, err = jsonpatch.DecodePatch(patch); err != nil {
			writeError(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		if len(jsonPatch) > maxJSONPatchOperations {
			writeError(w, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf(
				"The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(jsonPatch))))
			return
		}
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	manager := managerOrUserAgent(opts.FieldManager, r.UserAgent())
	updated, err := s.update(r.Context(), k, ns, name, sub, isDryRun(opts.DryRun), manager, func(cur store.Object) (store.Object, error) {
		setKind(cur, k)
		orig, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		var patched []byte
		switch ctype {
		case string(types.MergePatchType):
			if patched, err = jsonpatch.MergePatch(orig, patch); err != nil {
				return nil, apierrors.NewBadRequest(err.Error())
			}
		case string(types.StrategicMergePatchType):
			if patched, err = strategicpatch.StrategicMergePatch(orig, patch, k.newObj()); err != nil {
				return nil, strategicMergePatchError(err)
			}
		default:
			// A patch that does not apply (a test that fails, a path that is not there) is
			// 422, as the apiserver's.
			if patched, err = jsonPatch.Apply(orig); err != nil {
				return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
			}
		}
		obj := k.newObj()
		req := r.Clone(r.Context())
		req.Header.Set("Content-Type", "application/json")
		if err := s.codecs.decode(w, req, patched, obj, k.gvk(), opts.FieldValidation); err != nil {
			// The patched object is not one (a string where a number goes, a kind changed).
			return nil, apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{field.Invalid(field.NewPath("patch"), string(patched), err.Error())})
		}
		if err := checkName(obj, k, ns, name); err != nil {
			return nil, err
		}
		obj.SetNamespace(ns) // a cluster-scoped object's is cleared, as the apiserver does
		if obj.GetResourceVersion() != "" && obj.GetResourceVersion() != cur.GetResourceVersion() {
			return nil, apierrors.NewConflict(k.gr(), name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		return obj, nil
	})
	respond(w, http.StatusOK, updated, k, err)
}

// maxJSONPatchOperations is the apiserver's bound on the operations of one JSON patch.
const maxJSONPatchOperations = 10000

// strategicMergePatchError is the apiserver's status for a strategic merge patch that fails.
func strategicMergePatchError(err error) error {
	switch {
	case errors.Is(err, mergepatch.ErrNoListOfLists), errors.Is(err, mergepatch.ErrPatchContentNotMatchRetainKeys):
		return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "", err.Error(), 0, false)
	default:
		return apierrors.NewBadRequest(err.Error())
	}
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, k *kind) {
	opts, err := s.deleteOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := k.delete(r.Context(), r.PathValue("namespace"), r.PathValue("name"), opts)
	respond(w, http.StatusOK, obj, k, err)
}

// deleteCollection deletes, one by one, every object the selectors match.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, k *kind) {
	opts, err := s.deleteOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	_, f, err := listFilter(r, k)
	if err != nil {
		writeError(w, err)
		return
	}
	ns := r.PathValue("namespace")
	objs, rv, err := s.store.List(r.Context(), k.resource, ns)
	if err != nil {
		writeError(w, err)
		return
	}
	var items []store.Object
	for _, obj := range objs {
		if !f.matches(k.resource, obj) {
			continue
		}
		out, err := k.delete(r.Context(), obj.GetNamespace(), obj.GetName(), opts)
		if err != nil && !apierrors.IsNotFound(err) {
			writeError(w, err)
			return
		}
		if out != nil {
			setKind(out, k)
			items = append(items, out)
		}
	}
	writeJSON(w, http.StatusOK, k.list(items, rv))
}

// deleteOptions reads DeleteOptions as the apiserver does: from the body if there is one (kubectl
// sends them there), else from the query; then validates them (422 for a propagationPolicy or
// dryRun that is not one of the allowed values).
func (s *Server) deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		info, err := s.codecs.serializerFor(r.Header.Get("Content-Type"))
		if err != nil {
			return nil, err
		}
		want := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		obj, _, err := info.Serializer.Decode(body, &want, opts)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if obj != opts {
			return nil, apierrors.NewBadRequest("decoded object cannot be converted to DeleteOptions")
		}
	} else if err := decodeQuery(r, opts); err != nil {
		return nil, err
	}
	if errs := metav1validation.ValidateDeleteOptions(opts); len(errs) > 0 {
		return nil, invalidOptions("DeleteOptions", errs)
	}
	// A negative grace period is one second, as the apiserver's rest.BeforeDelete has it: not an
	// immediate (forced) deletion the client did not ask for.
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		opts.GracePeriodSeconds = ptr.To[int64](1)
	}
	return opts, nil
}
