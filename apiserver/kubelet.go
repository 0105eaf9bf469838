package apiserver

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podagent/podagent/logs"
)

// Kubelet is what the embedded API reaches on its node for the pods' logs, exec, port-forward and
// the node's metrics. In a cluster the kube-apiserver dials the kubelet's port for these; in
// standalone mode the agent runs in the same process and is handed over with SetKubelet, as the
// kubelet's server takes a HostInterface.
type Kubelet interface {
	// ContainerLog returns what writes the log asked for, or the kubelet's error for it.
	ContainerLog(ctx context.Context, namespace, name string, opts logs.PodLogOptions) (func(out io.Writer) error, error)
	// ExecTarget is the ID of the running instance of a pod's container ("" for the default one).
	ExecTarget(ctx context.Context, namespace, name, container string) (string, error)
	// PodNetNS is the network namespace of a running pod, where port-forward dials.
	PodNetNS(ctx context.Context, namespace, name string) (string, error)
	// KubeletHandler serves the kubelet API (/exec, /portForward, ...) to the embedded API,
	// which has authenticated and authorized the request: the API hands exec and port-forward
	// requests over to it, as a kube-apiserver proxies them to a node's kubelet port, so that
	// both speak the same protocols (SPDY and WebSocket).
	KubeletHandler() http.Handler
	// MetricsHandler serves the node's Prometheus metrics.
	MetricsHandler() http.Handler
}

// kubeletRef holds the node's Kubelet once it is there.
type kubeletRef struct{ v atomic.Pointer[Kubelet] }

// SetKubelet hands the API the node's kubelet half.
func (s *Server) SetKubelet(k Kubelet) { s.kubeletRef.v.Store(&k) }

// kubelet is the node's Kubelet, or the apiserver's answer when a node's kubelet cannot be
// reached: 503 with a Status that says so.
func (s *Server) kubelet() (Kubelet, error) {
	if k := s.kubeletRef.v.Load(); k != nil {
		return *k, nil
	}
	return nil, apierrors.NewServiceUnavailable("the node's kubelet is not running yet")
}

// nodeMetrics serves the node's metrics through the API (`kubectl get --raw /metrics`).
func (s *Server) nodeMetrics(w http.ResponseWriter, r *http.Request) {
	k, err := s.kubelet()
	if err != nil {
		writeError(w, err)
		return
	}
	k.MetricsHandler().ServeHTTP(w, r)
}
