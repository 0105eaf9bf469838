package apiserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"

	"github.com/podagent/podagent/runtime"
)

// The streaming timeouts are the kubelet's defaults.
const (
	// streamIdleTimeout ends an exec or port-forward connection that carried nothing for that
	// long: the kubelet's streamingConnectionIdleTimeout, 4h.
	streamIdleTimeout = 4 * time.Hour
	// streamCreationTimeout bounds the wait for the client's streams after the upgrade: 30s, the
	// kubelet's (remotecommand.DefaultStreamCreationTimeout).
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

// execWebSocketProtocols are the WebSocket subprotocols that the streaming library serves for
// exec: the legacy v1 to v4 channel protocols. kubectl 1.30+ asks for v5.channel.k8s.io only,
// which the kube-apiserver translates to SPDY for the kubelet; it is refused here before any
// upgrade, and kubectl falls back to SPDY.
var execWebSocketProtocols = []string{"", "channel.k8s.io", "base64.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"}

// registerStreaming serves the pods/exec and pods/portforward subresources, over SPDY, and over
// the legacy WebSocket protocols that the streaming library speaks.
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
// in the kube-apiserver's order: the options, the pod and container, then the upgrade.
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
	id, err := k.ExecTarget(r.Context(), ns, name, opts.container)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkUpgrade(r, remotecommand.SupportedStreamingProtocols, execWebSocketProtocols); err != nil {
		writeError(w, err)
		return
	}
	// The streaming library hands the executor the request's context, which a hijacked
	// connection never cancels: the executor gets one that ends when the client goes away.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	remotecommand.ServeExec(&hijackWatcher{ResponseWriter: w, gone: cancel}, r, &executor{kubelet: k, containerID: id, ctx: ctx},
		name, "", opts.container, opts.command, &opts.streams, streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// hijackWatcher is a ResponseWriter whose hijacked connection calls gone when reading from it
// fails: the client closed it (kubectl interrupted) or it broke.
type hijackWatcher struct {
	http.ResponseWriter
	gone func()
}

func (h *hijackWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over for streaming")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Reads go through the server's buffered reader (it may hold bytes already read), watched.
	r := bufio.NewReader(&readWatcher{r: rw.Reader, gone: h.gone})
	return conn, bufio.NewReadWriter(r, rw.Writer), nil
}

// readWatcher calls gone once its reader fails.
type readWatcher struct {
	r    io.Reader
	gone func()
}

func (w *readWatcher) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil {
		w.gone()
	}
	return n, err
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

// executor runs exec requests in one container through the runtime.
type executor struct {
	kubelet     Kubelet
	containerID string
	// ctx ends when the client's connection does; the command is then killed, as containerd's
	// CRI kills an exec whose context ends, rather than left running with nobody attached.
	ctx context.Context
}

// ExecInContainer runs cmd and turns a non-zero exit code into the ExitError from which the
// streaming library reports the code to the client (kubectl exits with it).
//
// With a terminal, the client's size changes (kubectl sends the first one at once) resize it.
func (e *executor) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if e.ctx != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(e.ctx, cancel)
		defer stop()
	}
	// Streams the client did not ask for arrive as nil interfaces, which the runtime leaves unattached.
	o := runtime.ExecOptions{Cmd: cmd, Stdin: in, Stdout: out, Stderr: errOut, TTY: tty}
	if tty && resize != nil {
		sizes := make(chan runtime.TerminalSize)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			defer close(sizes)
			for {
				select {
				case <-ctx.Done():
					return
				case s, ok := <-resize:
					if !ok {
						return
					}
					select {
					case sizes <- runtime.TerminalSize{Width: s.Width, Height: s.Height}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		o.Resize = sizes
	}
	code, err := e.kubelet.Exec(ctx, e.containerID, o)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q in container %s exited with %d", cmd, e.containerID, code), Code: code}
	}
	return nil
}
