package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/podagent/podagent/agent/store"
)

// kind is what the generic handlers need to know about one resource.
type kind struct {
	resource   string
	name       string
	namespaced bool
	newObj     func() store.Object
	// list wraps items in the resource's typed list.
	list func(items []store.Object, rv string) any
	// create admits a new object and stores it.
	create func(ctx context.Context, obj store.Object, dryRun bool) (store.Object, error)
	// update admits a changed object given the stored one (status, when subresource is "status").
	update func(cur, obj store.Object, subresource string) (store.Object, error)
	// delete deletes, gracefully where the resource has it.
	delete func(ctx context.Context, namespace, name string, opts *metav1.DeleteOptions) (store.Object, error)
}

func (k *kind) gr() schema.GroupResource { return schema.GroupResource{Resource: k.resource} }

func (s *Server) register(k *kind) {
	coll, item := "/api/v1/"+k.resource, "/api/v1/"+k.resource+"/{name}"
	if k.namespaced {
		s.mux.HandleFunc("GET /api/v1/"+k.resource, func(w http.ResponseWriter, r *http.Request) { s.listOrWatch(w, r, k, "") })
		coll, item = "/api/v1/namespaces/{namespace}/"+k.resource, "/api/v1/namespaces/{namespace}/"+k.resource+"/{name}"
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
	setKind(obj, k.name)
	writeJSON(w, code, obj)
}

func setKind(obj store.Object, name string) {
	obj.GetObjectKind().SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(name))
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, k *kind) {
	obj, err := s.store.Get(r.Context(), k.resource, r.PathValue("namespace"), r.PathValue("name"))
	if err == nil && wantsTable(r) {
		writeJSON(w, http.StatusOK, toTable(k.resource, []store.Object{obj}, obj.GetResourceVersion(), time.Now()))
		return
	}
	respond(w, http.StatusOK, obj, k, err)
}

func (s *Server) listOrWatch(w http.ResponseWriter, r *http.Request, k *kind, namespace string) {
	q := r.URL.Query()
	f, err := parseFilter(q, k.resource)
	if err != nil {
		writeError(w, err)
		return
	}
	if b, _ := strconv.ParseBool(q.Get("watch")); b {
		s.watch(w, r, k, namespace, f)
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
			setKind(obj, k.name)
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
func (s *Server) watch(w http.ResponseWriter, r *http.Request, k *kind, namespace string, f filter) {
	ctx := r.Context()
	if t, err := strconv.Atoi(r.URL.Query().Get("timeoutSeconds")); err == nil && t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	table := wantsTable(r)
	rv := r.URL.Query().Get("resourceVersion")
	var initial []store.Object
	if rv == "" || rv == "0" {
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
		setKind(obj, k.name)
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
		st := err.(apierrors.APIStatus).Status()
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
	for ev := range ch {
		if f.matches(k.resource, ev.Object) && !send(ev.Type, ev.Object) {
			return
		}
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, k *kind) {
	obj := k.newObj()
	if err := s.codecs.decode(w, r, obj, k.name); err != nil {
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
	// What the server sets is the server's, whatever the client sent.
	obj.SetUID("")
	obj.SetCreationTimestamp(metav1.Time{})
	obj.SetResourceVersion("")
	obj.SetGeneration(0)
	created, err := k.create(r.Context(), obj, dryRun(r))
	respond(w, http.StatusCreated, created, k, err)
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
	obj := k.newObj()
	if err := s.codecs.decode(w, r, obj, k.name); err != nil {
		writeError(w, err)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if obj.GetName() != name || (k.namespaced && obj.GetNamespace() != "" && obj.GetNamespace() != ns) {
		writeError(w, apierrors.NewBadRequest("the name or namespace of the object does not match the request's"))
		return
	}
	obj.SetNamespace(ns)
	updated, err := s.update(r.Context(), k, ns, name, sub, obj.GetResourceVersion(), func(store.Object) (store.Object, error) { return obj, nil })
	respond(w, http.StatusOK, updated, k, err)
}

// update stores the change next makes to the current object, through the resource's admission,
// with the client's resourceVersion (if any) as the precondition.
func (s *Server) update(ctx context.Context, k *kind, ns, name, sub, clientRV string, next func(cur store.Object) (store.Object, error)) (store.Object, error) {
	return s.store.GuaranteedUpdate(ctx, k.resource, ns, name, func(cur store.Object) (store.Object, error) {
		if clientRV != "" && clientRV != cur.GetResourceVersion() {
			return nil, apierrors.NewConflict(k.gr(), name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		obj, err := next(cur.DeepCopyObject().(store.Object))
		if err != nil {
			return nil, err
		}
		return k.update(cur, obj, sub)
	})
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, k *kind, sub string) {
	patch, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	ctype := r.Header.Get("Content-Type")
	if i := strings.Index(ctype, ";"); i >= 0 {
		ctype = ctype[:i]
	}
	updated, err := s.update(r.Context(), k, ns, name, sub, "", func(cur store.Object) (store.Object, error) {
		setKind(cur, k.name)
		orig, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		var patched []byte
		switch ctype {
		case "application/merge-patch+json":
			patched, err = jsonpatch.MergePatch(orig, patch)
		case "application/strategic-merge-patch+json":
			patched, err = strategicpatch.StrategicMergePatch(orig, patch, k.newObj())
		case "application/json-patch+json":
			var p jsonpatch.Patch
			if p, err = jsonpatch.DecodePatch(patch); err == nil {
				patched, err = p.Apply(orig)
			}
		default:
			return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", k.gr(), name,
				fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got %q)", ctype), 0, false)
		}
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the patch could not be applied: %v", err))
		}
		obj := k.newObj()
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(strings.NewReader(string(patched)))
		if err := s.codecs.decode(w, req, obj, k.name); err != nil {
			return nil, err
		}
		if obj.GetResourceVersion() != "" && obj.GetResourceVersion() != cur.GetResourceVersion() {
			return nil, apierrors.NewConflict(k.gr(), name, fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		return obj, nil
	})
	respond(w, http.StatusOK, updated, k, err)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, k *kind) {
	opts, err := deleteOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := k.delete(r.Context(), r.PathValue("namespace"), r.PathValue("name"), opts)
	respond(w, http.StatusOK, obj, k, err)
}

// deleteCollection deletes, one by one, every object the selectors match.
func (s *Server) deleteCollection(w http.ResponseWriter, r *http.Request, k *kind) {
	opts, err := deleteOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	f, err := parseFilter(r.URL.Query(), k.resource)
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
			setKind(out, k.name)
			items = append(items, out)
		}
	}
	writeJSON(w, http.StatusOK, k.list(items, rv))
}

// deleteOptions reads DeleteOptions from the body (kubectl sends them there) and the query.
func deleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid delete options: %v", err))
		}
	}
	if g := r.URL.Query().Get("gracePeriodSeconds"); g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("gracePeriodSeconds: %q is not an integer", g))
		}
		opts.GracePeriodSeconds = &n
	}
	if p := r.URL.Query().Get("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if pp := opts.PropagationPolicy; pp != nil {
		switch *pp {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy: Unsupported value: %q", *pp))
		}
	}
	return opts, nil
}

func dryRun(r *http.Request) bool {
	for _, v := range r.URL.Query()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}
