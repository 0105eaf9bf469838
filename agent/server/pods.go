package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// servePods serves GET /pods: the pods bound to this node as a v1 PodList, as the kubelet's
// getPods (its legacy codec gives the list, not the items, a kind and apiVersion).
func (s *Server) servePods(w http.ResponseWriter, r *http.Request) {
	pods, err := s.host.Pods(r.Context())
	if err != nil {
		writeErrorString(w, http.StatusInternalServerError, err.Error())
		return
	}
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]corev1.Pod, 0, len(pods))}
	for _, p := range pods {
		item := *p
		item.TypeMeta = metav1.TypeMeta{}
		list.Items = append(list.Items, item)
	}
	writeJSON(w, list)
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeErrorString(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(data); err != nil {
		slog.Debug("kubelet server: write response", "err", err)
	}
}

// healthCheck is one of /healthz's checks.
type healthCheck struct {
	name  string
	check func() error
}

// serveHealthz serves /healthz and /healthz/{check} as the kubelet's (k8s.io/apiserver's healthz
// handler with the checks ping, log and syncloop): "ok", or 500 listing the checks with the
// reasons withheld; ?verbose lists them on success too; ?exclude=NAME skips one.
func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request) {
	checks := []healthCheck{
		{"ping", func() error { return nil }},
		{"log", func() error { return nil }},
		{"syncloop", s.host.SyncLoopHealthy},
	}
	if name := r.PathValue("check"); name != "" {
		for _, c := range checks {
			if c.name == name {
				if err := c.check(); err != nil {
					http.Error(w, fmt.Sprintf("internal server error: %v", err), http.StatusInternalServerError)
					return
				}
				_, _ = fmt.Fprint(w, "ok")
				return
			}
		}
		http.NotFound(w, r)
		return
	}
	excluded := map[string]bool{}
	for _, e := range r.URL.Query()["exclude"] {
		for _, n := range strings.Split(e, ",") {
			excluded[strings.TrimSpace(n)] = true
		}
	}
	var out strings.Builder
	failed := false
	for _, c := range checks {
		if excluded[c.name] {
			fmt.Fprintf(&out, "[+]%s excluded: ok\n", c.name)
			continue
		}
		if err := c.check(); err != nil {
			// The reason stays out of the answer, as the apiserver's healthz: it goes to the log.
			slog.Warn("kubelet server: health check failed", "check", c.name, "err", err)
			fmt.Fprintf(&out, "[-]%s failed: reason withheld\n", c.name)
			failed = true
		} else {
			fmt.Fprintf(&out, "[+]%s ok\n", c.name)
		}
	}
	if failed {
		http.Error(w, out.String()+"healthz check failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if _, verbose := r.URL.Query()["verbose"]; !verbose {
		_, _ = fmt.Fprint(w, "ok")
		return
	}
	_, _ = fmt.Fprint(w, out.String()+"healthz check passed\n")
}
