package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// target is the container an exec, attach or run request reaches.
type target struct {
	pod         *corev1.Pod
	container   string
	containerID string
}

// findTarget resolves {ns}/{pod}[/{uid}]/{container} as the kubelet does, answering what it
// answers: 404 "pod does not exist" for a pod not bound here, 500 `container not found ("c")`
// for a pod of another UID or a container that is not (or not yet) running.
func (s *Server) findTarget(w http.ResponseWriter, r *http.Request) (*target, bool) {
	ns, name, uid, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid"), r.PathValue("container")
	pod, err := s.findPod(r.Context(), ns, name)
	if err != nil {
		writeErrorString(w, http.StatusInternalServerError, err.Error())
		return nil, false
	}
	if pod == nil {
		writeErrorString(w, http.StatusNotFound, "pod does not exist")
		return nil, false
	}
	notFound := fmt.Sprintf("container not found (%q)", container)
	if (uid != "" && string(pod.UID) != uid) || !hasContainer(pod, container) {
		writeErrorString(w, http.StatusInternalServerError, notFound)
		return nil, false
	}
	id, err := s.host.ContainerID(r.Context(), ns, name, container)
	if err != nil {
		writeHostError(w, err)
		return nil, false
	}
	if id == "" {
		writeErrorString(w, http.StatusInternalServerError, notFound)
		return nil, false
	}
	return &target{pod: pod, container: container, containerID: id}, true
}

// serveExec serves /exec/{ns}/{pod}[/{uid}]/{container}?command=...&stdin=1&stdout=1&stderr=1&tty=1
// as the kubelet: over SPDY (remotecommand v1 to v4, the kube-apiserver's own protocol towards
// kubelets) and over WebSocket, v5.channel.k8s.io (which the kubelet serves through its
// translator when the apiserver hands kubectl's WebSocket on) and the older channel protocols.
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	streamOpts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeErrorString(w, http.StatusBadRequest, err.Error())
		return
	}
	t, ok := s.findTarget(w, r)
	if !ok {
		return
	}
	cmd := r.URL.Query()["command"]
	// The streaming library hands the executor the request's context, which a hijacked
	// connection never cancels: the executor gets one that ends when the client goes away.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	w = &hijackWatcher{ResponseWriter: w, gone: cancel}
	e := &executor{host: s.host, containerID: t.containerID, ctx: ctx}
	if wsstream.IsWebSocketRequest(r) {
		serveWebSocketExec(ctx, w, r, streamOpts, e, cmd)
		return
	}
	remotecommand.ServeExec(w, r, e, t.pod.Name, string(t.pod.UID), t.container, cmd, streamOpts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// serveAttach serves /attach/... up to the container lookup, then refuses: podagent's
// containers have no stdin and their output goes to their log files through the log driver, so
// there is nothing to attach to yet. The answer is a Status, as kubectl prints it.
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	if _, err := remotecommand.NewOptions(r); err != nil {
		writeErrorString(w, http.StatusBadRequest, err.Error())
		return
	}
	t, ok := s.findTarget(w, r)
	if !ok {
		return
	}
	st := apierrors.NewBadRequest(fmt.Sprintf(
		"attach is not supported yet: container %s of pod %s/%s has no stdin attached; use kubectl logs -f, or exec",
		t.container, t.pod.Namespace, t.pod.Name)).Status()
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	data, _ := json.Marshal(st)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_, _ = w.Write(data)
}

// serveRun serves POST /run/{ns}/{pod}[/{uid}]/{container}?cmd=...: the command (split on
// spaces, as the kubelet's legacy parameter) run to its end, stdout then stderr in the body. A
// non-zero exit is 500 with the CRI's ExecSync message, as the kubelet's RunInContainer.
func (s *Server) serveRun(w http.ResponseWriter, r *http.Request) {
	t, ok := s.findTarget(w, r)
	if !ok {
		return
	}
	cmd := strings.Split(r.URL.Query().Get("cmd"), " ")
	var stdout, stderr bytes.Buffer
	code, err := s.host.Exec(r.Context(), t.containerID, ExecOptions{Cmd: cmd, Stdout: &stdout, Stderr: &stderr})
	if err == nil && code != 0 {
		err = fmt.Errorf("command '%s' exited with %d: %s", strings.Join(cmd, " "), code, stderr.String())
	}
	if err != nil {
		writeErrorString(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := append(stdout.Bytes(), stderr.Bytes()...)
	if len(out) == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json") // sic: the kubelet's writeJSONResponse
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// executor runs exec requests in one container through the host, for the streaming library.
type executor struct {
	host        Host
	containerID string
	// ctx ends when the client's connection does; the command is then killed rather than left
	// running with nobody attached, as containerd's CRI does.
	ctx context.Context
}

// ExecInContainer runs cmd and turns a non-zero exit code into the ExitError from which the
// streaming library reports the code to the client (kubectl exits with it), with containerd's
// CRI message. With a terminal, the client's size changes resize it.
func (e *executor) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(e.ctx, cancel)
	defer stop()
	o := ExecOptions{Cmd: cmd, TTY: tty}
	// Streams the client did not ask for stay nil interfaces, which the host leaves unattached.
	if in != nil {
		o.Stdin = in
	}
	if out != nil {
		o.Stdout = out
	}
	if errOut != nil {
		o.Stderr = errOut
	}
	if tty && resize != nil {
		o.Resize = relaySizes(ctx, resize)
	}
	code, err := e.host.Exec(ctx, e.containerID, o)
	if err != nil {
		return fmt.Errorf("exec %q in container %s: %w", cmd, e.containerID, err)
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("error executing command %v, exit code %d", cmd, code), Code: code}
	}
	return nil
}

// relaySizes passes the streaming library's terminal sizes on as the host's, until in closes or
// ctx ends.
func relaySizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan TerminalSize {
	out := make(chan TerminalSize)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- TerminalSize{Width: s.Width, Height: s.Height}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// The remote command channels of the WebSocket protocols, as their stream identifiers.
const (
	chanStdin  = remotecommand.StreamStdIn
	chanStdout = remotecommand.StreamStdOut
	chanStderr = remotecommand.StreamStdErr
	chanError  = remotecommand.StreamErr
	chanResize = remotecommand.StreamResize
)

// execWebSocketProtocols are the subprotocols served for exec over WebSocket, binary or not:
// v5 (v4 and the CLOSE signal on stdin, which kubectl 1.30+ uses), v4 (exit codes as a JSON
// Status) and the older ones, which report only a failure's message.
var execWebSocketProtocols = map[string]bool{
	remotecommand.StreamProtocolV5Name: true,
	"v4.channel.k8s.io":                true,
	"v4.base64.channel.k8s.io":         false,
	"channel.k8s.io":                   true,
	"base64.channel.k8s.io":            false,
	"":                                 true,
}

// serveWebSocketExec runs an exec over a WebSocket. The kubelet serves v5 through the
// apiserver's stream translator (WebSocket to SPDY towards its own streaming server); here it is
// served directly, since wsstream already speaks v5's CLOSE signal, without k8s.io/apiserver.
func serveWebSocketExec(ctx context.Context, w http.ResponseWriter, r *http.Request, opts *remotecommand.Options, e *executor, cmd []string) {
	channels := make([]wsstream.ChannelType, 5)
	channels[chanStdin] = pick(opts.Stdin, wsstream.ReadChannel)
	channels[chanStdout] = pick(opts.Stdout, wsstream.WriteChannel)
	channels[chanStderr] = pick(opts.Stderr, wsstream.WriteChannel)
	channels[chanError] = wsstream.WriteChannel
	channels[chanResize] = wsstream.ReadChannel
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for p, binary := range execWebSocketProtocols {
		protocols[p] = wsstream.ChannelProtocolConfig{Binary: binary, Channels: channels}
	}
	conn := wsstream.NewConn(protocols)
	conn.SetIdleTimeout(streamIdleTimeout)
	proto, streams, err := conn.Open(w, r)
	if err != nil {
		slog.Info("kubelet server: unable to upgrade exec to a WebSocket", "err", err)
		return
	}
	defer conn.Close()

	// An empty message on the lowest writable channel tells the client the connection is ready.
	switch {
	case opts.Stdout:
		_, _ = streams[chanStdout].Write(nil)
	case opts.Stderr:
		_, _ = streams[chanStderr].Write(nil)
	default:
		_, _ = streams[chanError].Write(nil)
	}
	var in io.Reader
	var out, errOut io.WriteCloser
	if opts.Stdin {
		in = streams[chanStdin]
	}
	if opts.Stdout {
		out = streams[chanStdout]
	}
	if opts.Stderr {
		errOut = streams[chanStderr]
	}
	var resize chan remotecommand.TerminalSize
	if opts.TTY {
		resize = make(chan remotecommand.TerminalSize)
		go decodeSizes(ctx, streams[chanResize], resize)
	}
	err = e.ExecInContainer(ctx, "", "", "", cmd, in, out, errOut, opts.TTY, resize, 0)
	if werr := writeExecStatus(streams[chanError], proto, execStatus(err)); werr != nil {
		slog.Debug("kubelet server: write exec status", "err", werr)
	}
}

func pick(on bool, t wsstream.ChannelType) wsstream.ChannelType {
	if on {
		return t
	}
	return wsstream.IgnoreChannel
}

// decodeSizes reads the client's terminal sizes (JSON objects) from the resize channel.
func decodeSizes(ctx context.Context, r io.Reader, out chan<- remotecommand.TerminalSize) {
	defer close(out)
	dec := json.NewDecoder(r)
	for {
		var size remotecommand.TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case out <- size:
		case <-ctx.Done():
			return
		}
	}
}

// execStatus is the Status that ends an exec, as the streaming library writes it: Success, a
// NonZeroExitCode failure whose cause carries the code, or an internal error.
func execStatus(err error) metav1.Status {
	if err == nil {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	var exitErr utilexec.ExitError
	if errors.As(err, &exitErr) && exitErr.Exited() {
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{
				{Type: remotecommand.ExitCodeCauseType, Message: fmt.Sprintf("%d", exitErr.ExitStatus())},
			}},
		}
	}
	return metav1.Status{
		Status:  metav1.StatusFailure,
		Reason:  metav1.StatusReasonInternalError,
		Message: fmt.Sprintf("Internal error occurred: error executing command in container: %v", err),
		Code:    http.StatusInternalServerError,
	}
}

// writeExecStatus writes the final status on the error channel: JSON for v4 and v5; for the
// older protocols, a failure's message only.
func writeExecStatus(w io.Writer, proto string, st metav1.Status) error {
	if strings.HasPrefix(proto, "v4.") || strings.HasPrefix(proto, "v5.") {
		data, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if st.Status == metav1.StatusSuccess {
		return nil
	}
	_, err := io.WriteString(w, st.Message)
	return err
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
