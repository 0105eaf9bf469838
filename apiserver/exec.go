package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// execWebSocketProtocols are the WebSocket subprotocols served for exec: v5.channel.k8s.io, which
// kubectl 1.30+ asks for first, and the older channel protocols.
var execWebSocketProtocols = []string{"", "channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io"}

// registerStreaming serves the pods/exec and pods/portforward subresources, over SPDY and over
// WebSockets, through the node's kubelet API.
func (s *Server) registerStreaming() {
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		s.mux.HandleFunc(m+" /api/v1/namespaces/{namespace}/pods/{name}/exec", s.podExec)
		s.mux.HandleFunc(m+" /api/v1/namespaces/{namespace}/pods/{name}/portforward", s.podPortForward)
		s.mux.HandleFunc(m+" /api/v1/namespaces/{namespace}/pods/{name}/attach", s.podAttach)
	}
}

// podAttach refuses pods/attach with a Status that says why and what to use instead: a
// container's output goes to its log files through the log driver, not to the agent, and
// containers never get a stdin (validation refuses stdin and tty).
func (s *Server) podAttach(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	k, err := s.kubelet()
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := k.ExecTarget(r.Context(), r.PathValue("namespace"), name, r.URL.Query().Get("container")); err != nil {
		writeError(w, err)
		return
	}
	writeError(w, apierrors.NewBadRequest(fmt.Sprintf(
		"podagent does not support attach: containers have no stdin and their output goes to their logs; use kubectl logs -f %s", name)))
}

// podExec serves .../pods/NAME/exec with kubectl's query: command (repeated), container, stdin,
// stdout, stderr, tty. Everything that can fail before the upgrade answers a Kubernetes Status,
// in the kube-apiserver's order: the options, the pod and container, then the upgrade; the
// kubelet API then serves the stream (proxyToKubelet).
func (s *Server) podExec(w http.ResponseWriter, r *http.Request) {
	opts, err := parseExecOptions(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	k, err := s.kubelet()
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := k.ExecTarget(r.Context(), ns, name, opts.container); err != nil {
		writeError(w, err)
		return
	}
	container, err := s.execContainer(r.Context(), ns, name, opts.container)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkUpgrade(r, remotecommand.SupportedStreamingProtocols, execWebSocketProtocols); err != nil {
		writeError(w, err)
		return
	}
	// The kubelet's names for the streams, as the kube-apiserver translates them.
	q := url.Values{"command": opts.command}
	for _, b := range []struct {
		name string
		on   bool
	}{{"input", opts.streams.Stdin}, {"output", opts.streams.Stdout}, {"error", opts.streams.Stderr}, {"tty", opts.streams.TTY}} {
		if b.on {
			q.Set(b.name, "1")
		}
	}
	proxyToKubelet(w, r, k, "/exec/"+ns+"/"+name+"/"+container, q)
}

// execContainer is the container an exec reaches: the one named, else the pod's default one.
// (ExecTarget has checked that it exists and runs.)
func (s *Server) execContainer(ctx context.Context, ns, name, container string) (string, error) {
	if container != "" {
		return container, nil
	}
	obj, err := s.store.Get(ctx, store.Pods, ns, name)
	if err != nil {
		return "", err
	}
	pod := obj.(*corev1.Pod)
	if c := pod.Annotations[keys.DefaultContainerAnnotation]; c != "" {
		return c, nil
	}
	return pod.Spec.Containers[0].Name, nil
}

// proxyToKubelet hands the request over to the node's kubelet API at path with query, as the
// kube-apiserver proxies exec and port-forward to a node: the kubelet API upgrades the connection
// (SPDY, or WebSocket) and serves the streams.
func proxyToKubelet(w http.ResponseWriter, r *http.Request, k Kubelet, path string, query url.Values) {
	out := r.Clone(r.Context())
	out.URL = &url.URL{Path: path, RawQuery: query.Encode()}
	out.RequestURI = out.URL.RequestURI()
	k.KubeletHandler().ServeHTTP(w, out)
}

// execOptions are an exec request's query, as the kube-apiserver's PodExecOptions.
type execOptions struct {
	command   []string
	container string
	streams   remotecommand.Options
}

func parseExecOptions(q url.Values) (execOptions, error) {
	o := execOptions{command: q["command"], container: q.Get("container")}
	var errs []string
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"stdin", &o.streams.Stdin}, {"stdout", &o.streams.Stdout}, {"stderr", &o.streams.Stderr}, {"tty", &o.streams.TTY}} {
		if v := q.Get(b.name); v != "" {
			val, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %q is not a boolean", b.name, v))
			}
			*b.dst = val
		}
	}
	if len(o.command) == 0 {
		errs = append(errs, "you must specify at least one command for the container")
	}
	if !o.streams.Stdin && !o.streams.Stdout && !o.streams.Stderr {
		errs = append(errs, "you must specify at least one of stdin, stdout, stderr")
	}
	if len(errs) > 0 {
		return o, apierrors.NewBadRequest(strings.Join(errs, "; "))
	}
	// A terminal merges stderr into stdout, as the kubelet does.
	if o.streams.TTY {
		o.streams.Stderr = false
	}
	return o, nil
}

// checkUpgrade refuses with a Kubernetes Status what the streaming library would refuse in plain
// text: a request that is not an upgrade, an SPDY upgrade sharing no protocol with spdyProtocols,
// or a WebSocket asking only for subprotocols outside wsProtocols. The last answer is what makes
// kubectl 1.30+ fall back from WebSockets to SPDY at once: any answer but 101 does.
func checkUpgrade(r *http.Request, spdyProtocols, wsProtocols []string) error {
	if wsstream.IsWebSocketRequest(r) {
		asked := headerList(r.Header.Values("Sec-WebSocket-Protocol"))
		if len(asked) == 0 {
			asked = []string{""}
		}
		for _, p := range asked {
			if slices.Contains(wsProtocols, p) {
				return nil
			}
		}
		named := slices.DeleteFunc(slices.Clone(wsProtocols), func(p string) bool { return p == "" })
		return apierrors.NewBadRequest(fmt.Sprintf("WebSocket subprotocols %q are not supported: use SPDY, or one of %q", asked, named))
	}
	if !httpstream.IsUpgradeRequest(r) || !strings.EqualFold(r.Header.Get(httpstream.HeaderUpgrade), spdy.HeaderSpdy31) {
		return apierrors.NewBadRequest("Upgrade request required: " + spdy.HeaderSpdy31 + " or WebSocket")
	}
	asked := headerList(r.Header.Values(httpstream.HeaderProtocolVersion))
	for _, p := range asked {
		if slices.Contains(spdyProtocols, p) {
			return nil
		}
	}
	return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, r.PathValue("name"),
		fmt.Errorf("unable to negotiate a stream protocol: the client supports %q, the server %q", asked, spdyProtocols))
}

// headerList is the comma-separated values of a header, trimmed, without empty ones.
func headerList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
