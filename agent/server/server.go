// Package server is the kubelet's HTTPS server for podagent's node mode, as the kubelet's
// pkg/kubelet/server: the kube-apiserver reaches it for kubectl logs, exec, attach and
// port-forward, and metrics-server and Prometheus read stats and metrics from it. Every request is
// authenticated (client certificate or bearer token) and authorized (SubjectAccessReview) with the
// kubelet's webhook modes and attribute mapping.
//
// What the server needs from the agent is the Host seam, so that the whole server is tested with
// a fake host: no containerd, no network namespace.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Host is what the server needs from the agent, for testability, as the kubelet's HostInterface.
// Errors that are Kubernetes API status errors (apierrors) answer with their code; any other
// error answers 500, as the kubelet's do.
type Host interface {
	// Pods are the pods bound to this node (from the API and static), as the kubelet's pod
	// manager holds them: what /pods lists and what every pod lookup searches.
	Pods(ctx context.Context) ([]*corev1.Pod, error)
	// ContainerID is the ID of the running instance of a container of pod namespace/name, the one
	// exec and run reach. "" with a nil error means the container does not run, which the server
	// answers as the kubelet does ("container not found").
	ContainerID(ctx context.Context, namespace, name, container string) (string, error)
	// PodNetNS is the path of the network namespace of a running pod's sandbox, where
	// port-forward dials.
	PodNetNS(ctx context.Context, namespace, name string) (string, error)
	// ContainerLog finds the log of a container (the current instance, or the last terminated one
	// with opts.Previous) and returns what writes it to out with opts' tail, since, timestamps,
	// limitBytes and follow. Errors about the pod or container come back before anything is
	// written; follow ends when ctx does or the container stops.
	ContainerLog(ctx context.Context, namespace, name, container string, opts *corev1.PodLogOptions) (func(out io.Writer) error, error)
	// Exec runs a command in a running container (by ContainerID) and returns its exit code.
	// Streams that the client did not ask for are nil. ctx ends when the client goes away, and the
	// command must then be killed.
	Exec(ctx context.Context, containerID string, opts ExecOptions) (exitCode int, err error)
	// PortForward connects stream to port on the loopback of the network namespace at netnsPath
	// and copies both ways until either side is done (runtime.PortForward).
	PortForward(ctx context.Context, netnsPath string, port int32, stream io.ReadWriteCloser) error
	// Stats are the node's and every pod's CPU and memory usage: cumulative usageCoreNanoSeconds,
	// working set, usage and RSS, with the time each was sampled. The server fills NodeName and
	// usageNanoCores (from the previous sample, as the kubelet's CRI stats provider does) where
	// the host leaves them nil.
	Stats(ctx context.Context) (*statsapi.Summary, error)
	// SyncLoopHealthy is nil while the agent's sync loop turns: /healthz's "syncloop" check.
	SyncLoopHealthy() error
}

// ExecOptions are the streams and command of an exec, as runtime.ExecOptions.
type ExecOptions struct {
	Cmd            []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize carries the client's terminal size changes (with TTY); it may be nil.
	Resize <-chan TerminalSize
}

// TerminalSize is a terminal's width and height in characters.
type TerminalSize struct {
	Width, Height uint16
}

// Options configure the server.
type Options struct {
	// Addr is the address to listen on, ":10250" as the kubelet's port.
	Addr string
	// CertFile and KeyFile are the node's serving certificate. Without them, a self-signed one is
	// made (or reused) in CertDir as pki/kubelet.crt and pki/kubelet.key, as the kubelet does.
	CertFile, KeyFile string
	CertDir           string
	// ClientCAFile is the kubelet's --client-ca-file: client certificates that chain to it
	// authenticate, as CN (user) and O (groups). Without it, only tokens authenticate.
	ClientCAFile string
	// Authenticator authenticates bearer tokens (TokenReview); nil refuses them. Client
	// certificates are checked against ClientCAFile before it.
	Authenticator Authenticator
	// Authorizer decides every authenticated request (SubjectAccessReview). Required.
	Authorizer Authorizer
	Host       Host
	// NodeName is this node's name: the object of every authorization check.
	NodeName string
	// Metrics is the registry that /metrics serves; nil serves an empty one.
	Metrics prometheus.Gatherer
}

// The kubelet's streaming timeouts.
const (
	// streamIdleTimeout ends an exec or port-forward connection that carried nothing for that
	// long: the kubelet's streamingConnectionIdleTimeout, 4h.
	streamIdleTimeout = 4 * time.Hour
	// streamCreationTimeout bounds the wait for the client's streams after the upgrade, 30s.
	streamCreationTimeout = 30 * time.Second
)

// Server serves the kubelet API. It is an http.Handler; Listen serves it over TLS.
type Server struct {
	host     Host
	nodeName string
	authn    Authenticator
	authz    Authorizer
	metrics  prometheus.Gatherer
	usage    *usageCache
	mux      *http.ServeMux
}

// New returns the kubelet API handler for opts (Addr and the serving certificate aside). Every
// request goes through authentication (a client certificate chaining to ClientCAFile, else a
// bearer token) and authorization.
func New(opts Options) (*Server, error) {
	if opts.Host == nil || opts.Authorizer == nil || opts.NodeName == "" {
		return nil, errors.New("kubelet server: a host, an authorizer and the node name are required")
	}
	var authn Authenticator = denyTokens{}
	if opts.Authenticator != nil {
		authn = opts.Authenticator
	}
	if opts.ClientCAFile != "" {
		authn = &x509Authenticator{caFile: opts.ClientCAFile, next: authn}
	}
	metrics := opts.Metrics
	if metrics == nil {
		metrics = prometheus.NewRegistry()
	}
	s := &Server{host: opts.Host, nodeName: opts.NodeName, authn: authn, authz: opts.Authorizer, metrics: metrics,
		usage: newUsageCache(), mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// routes registers the kubelet's endpoints with its methods: the read-only ones GET only (405
// otherwise, as the kubelet's GETOnlyRestfulFilter), the streaming ones GET and POST.
func (s *Server) routes() {
	s.mux.HandleFunc("/healthz", s.serveHealthz)
	s.mux.HandleFunc("/healthz/{check}", s.serveHealthz)
	s.mux.HandleFunc("/pods", getOnly(s.servePods))
	s.mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", getOnly(s.serveContainerLogs))
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		s.mux.HandleFunc(m+" /exec/{ns}/{pod}/{container}", s.serveExec)
		s.mux.HandleFunc(m+" /exec/{ns}/{pod}/{uid}/{container}", s.serveExec)
		s.mux.HandleFunc(m+" /attach/{ns}/{pod}/{container}", s.serveAttach)
		s.mux.HandleFunc(m+" /attach/{ns}/{pod}/{uid}/{container}", s.serveAttach)
		s.mux.HandleFunc(m+" /portForward/{ns}/{pod}", s.servePortForward)
		s.mux.HandleFunc(m+" /portForward/{ns}/{pod}/{uid}", s.servePortForward)
		s.mux.HandleFunc(m+" /stats/summary", s.serveStatsSummary)
	}
	s.mux.HandleFunc("POST /run/{ns}/{pod}/{container}", s.serveRun)
	s.mux.HandleFunc("POST /run/{ns}/{pod}/{uid}/{container}", s.serveRun)
	s.mux.HandleFunc("/metrics", getOnly(s.serveMetrics))
	s.mux.HandleFunc("/metrics/resource", getOnly(s.serveResourceMetrics))
}

// ServeHTTP authenticates and authorizes the request, then serves it. As the kubelet, nothing is
// served without both, /healthz included.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Listen serves the kubelet API on opts.Addr over TLS until ctx ends. It returns once listening
// fails or the server has shut down.
func Listen(ctx context.Context, opts Options) error {
	h, err := New(opts)
	if err != nil {
		return err
	}
	tlsConfig, err := serverTLSConfig(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s for the kubelet server: %w", opts.Addr, err)
	}
	// The kubelet's http.Server settings: long timeouts, since logs -f and exec stream for hours.
	srv := &http.Server{
		Handler:        h,
		TLSConfig:      tlsConfig,
		IdleTimeout:    90 * time.Second,
		ReadTimeout:    4 * time.Hour,
		WriteTimeout:   4 * time.Hour,
		MaxHeaderBytes: 1 << 20,
		BaseContext:    func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	slog.Info("kubelet server listening", "addr", ln.Addr().String(), "node", opts.NodeName)
	if err := srv.Serve(tls.NewListener(ln, tlsConfig)); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve the kubelet API on %s: %w", opts.Addr, err)
	}
	return nil
}

// getOnly refuses methods other than GET with 405 and an Allow header, as the kubelet's
// GETOnlyRestfulFilter.
func getOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeErrorString(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		h(w, r)
	}
}

// writeErrorString answers as go-restful's WriteErrorString, which the kubelet uses for nearly
// every error: the status and the bare message, no newline, no Status object.
func writeErrorString(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// writeHostError answers an error of the host: with its code if it is a Kubernetes status
// error, else 500, and its message, as the kubelet's streaming.WriteError.
func writeHostError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code != 0 {
		code = int(st.Status().Code)
	}
	writeErrorString(w, code, err.Error())
}

// findPod is the pod namespace/name among the host's, and whether uid (if given) is its UID.
func (s *Server) findPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pods, err := s.host.Pods(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pods of node %s: %w", s.nodeName, err)
	}
	for _, p := range pods {
		if p.Namespace == namespace && p.Name == name {
			return p, nil
		}
	}
	return nil, nil
}

// hasContainer tells whether the pod's spec names the container (init, app or ephemeral), as
// the kubelet's GetContainerSpec.
func hasContainer(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}
