package apiserver

import (
	"net/http"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sversion "k8s.io/apimachinery/pkg/version"

	"github.com/podagent/podagent/internal/version"
)

// resourceList is the core group's discovery document: what kubectl's RESTMapper, short names
// (po, ns, no, ev) and categories (`all`) are read from.
func resourceList() *metav1.APIResourceList {
	all := metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	return &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: "v1",
		APIResources: []metav1.APIResource{
			{Name: "events", SingularName: "event", Namespaced: true, Kind: "Event", Verbs: metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}, ShortNames: []string{"ev"}},
			{Name: "namespaces", SingularName: "namespace", Kind: "Namespace", Verbs: metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}, ShortNames: []string{"ns"}},
			{Name: "namespaces/status", SingularName: "", Kind: "Namespace", Verbs: metav1.Verbs{"get"}},
			{Name: "nodes", SingularName: "node", Kind: "Node", Verbs: metav1.Verbs{"create", "delete", "get", "list", "patch", "update", "watch"}, ShortNames: []string{"no"}},
			{Name: "nodes/status", SingularName: "", Kind: "Node", Verbs: metav1.Verbs{"get", "patch", "update"}},
			{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", Verbs: all, ShortNames: []string{"po"}, Categories: []string{"all"}},
			{Name: "pods/exec", SingularName: "", Namespaced: true, Kind: "PodExecOptions", Verbs: metav1.Verbs{"create", "get"}},
			{Name: "pods/log", SingularName: "", Namespaced: true, Kind: "Pod", Verbs: metav1.Verbs{"get"}},
			{Name: "pods/portforward", SingularName: "", Namespaced: true, Kind: "PodPortForwardOptions", Verbs: metav1.Verbs{"create", "get"}},
			{Name: "pods/status", SingularName: "", Namespaced: true, Kind: "Pod", Verbs: metav1.Verbs{"get", "patch", "update"}},
		},
	}
}

func (s *Server) discoveryAPI(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, &metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
			{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host},
		},
	})
}

// coordinationGroup is the one API group served beside the core one: the nodes' Leases.
func coordinationGroup() metav1.APIGroup {
	gv := metav1.GroupVersionForDiscovery{GroupVersion: coordinationv1.SchemeGroupVersion.String(), Version: "v1"}
	return metav1.APIGroup{Name: coordinationv1.GroupName, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

func (s *Server) discoveryAPIs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
		Groups: []metav1.APIGroup{coordinationGroup()}})
}

func (s *Server) discoveryCoordinationGroup(w http.ResponseWriter, _ *http.Request) {
	g := coordinationGroup()
	g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
	writeJSON(w, http.StatusOK, &g)
}

func (s *Server) discoveryCoordinationV1(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: coordinationv1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "leases", SingularName: "lease", Namespaced: true, Kind: "Lease",
			Verbs: metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}}},
	})
}

func (s *Server) discoveryV1(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, resourceList())
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, &k8sversion.Info{
		Major: version.KubernetesMajor, Minor: version.KubernetesMinor, GitVersion: version.Kubelet, Platform: "linux/" + goarch(),
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}
