// Package api serves the agent's Kubernetes API. So far: the pods/log subresource.
package apiserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/apiserver/store"
)

// Server is the HTTP handler of the API.
type Server struct {
	kubeletRef kubeletRef
	store      *store.Store
	registry   *registry.Registry
	codecs     *codecs
	// fieldManagers merge server-side apply patches and record managedFields.
	fieldManagers map[fieldManagerKey]*managedfields.FieldManager
	mux           *http.ServeMux
}

// New returns the API served from st, with registry's rules; the node's kubelet half is handed
// over later with SetKubelet.
func New(st *store.Store, reg *registry.Registry) (*Server, error) {
	c, err := newCodecs()
	if err != nil {
		return nil, err
	}
	fms, err := newFieldManagers(c.scheme)
	if err != nil {
		return nil, err
	}
	s := &Server{store: st, registry: reg, codecs: c, fieldManagers: fms, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /api", s.discoveryAPI)
	s.mux.HandleFunc("GET /apis", s.discoveryAPIs)
	s.mux.HandleFunc("GET /api/v1", s.discoveryV1)
	s.mux.HandleFunc("GET /apis/coordination.k8s.io", s.discoveryCoordinationGroup)
	s.mux.HandleFunc("GET /apis/coordination.k8s.io/v1", s.discoveryCoordinationV1)
	s.mux.HandleFunc("GET /version", s.version)
	s.mux.HandleFunc("GET /metrics", s.nodeMetrics)
	for _, p := range []string{"/healthz", "/readyz", "/livez"} {
		s.mux.HandleFunc("GET "+p, s.healthz)
	}
	for _, k := range []*kind{s.pods(), s.namespaces(), s.nodes(), s.events(), s.leases()} {
		s.register(k)
	}
	s.mux.HandleFunc("GET /api/v1/namespaces/{namespace}/pods/{name}/log", s.podLog)
	s.registerStreaming()
	if err := registerOpenAPI(s.mux); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("/", s.notFound)
	return s, nil
}

// notFound answers what no route serves: 405 MethodNotAllowed when the path is served for other
// methods (a POST to one pod, a DELETE of a node, a PUT of pods/log), as the apiserver does, else
// 404. The catch-all "/" matches every method, so the mux would never answer 405 itself.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, r.Method, schema.GroupResource{}, "", "", 0, false))
		return
	}
	writeError(w, apierrors.NewGenericServerResponse(http.StatusNotFound, r.Method, schema.GroupResource{}, "",
		"the server could not find the requested resource", 0, false))
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// writeError answers with err as a Kubernetes Status, as the kube-apiserver does: its reason and
// code for a status error, 500 for anything else.
func writeError(w http.ResponseWriter, err error) {
	var status apierrors.APIStatus
	st := metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error(),
		Reason: metav1.StatusReasonInternalError}
	if errors.As(err, &status) {
		st = status.Status()
		st.Status = metav1.StatusFailure
	}
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}
