package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"

	gwebsocket "github.com/gorilla/websocket"
	clientportforward "k8s.io/client-go/tools/portforward"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// servePortForward serves /portForward/{ns}/{pod}[/{uid}] as the kubelet: over SPDY
// (portforward.k8s.io, each stream naming its port), over the legacy WebSocket channel protocol
// (v4.channel.k8s.io, ports in the query), and over SPDY tunnelled in a WebSocket
// (SPDY/3.1+portforward.k8s.io: kubectl 1.31+, handed on by the apiserver to nodes that declare
// ExtendWebSocketsToKubelet). Errors before the upgrade are the kubelet's: 400 for bad ports, 404
// "pod does not exist" and "pod not found" (other UID), the host's error for a pod whose sandbox
// does not run.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	tunnel := wsstream.IsWebSocketRequestWithTunnelingProtocol(r)
	opts := &portforward.V4Options{}
	if !tunnel {
		var err error
		if opts, err = portforward.NewV4Options(r); err != nil {
			writeErrorString(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ns, name, uid := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid")
	pod, err := s.findPod(r.Context(), ns, name)
	if err != nil {
		writeErrorString(w, http.StatusInternalServerError, err.Error())
		return
	}
	if pod == nil {
		writeErrorString(w, http.StatusNotFound, "pod does not exist")
		return
	}
	if uid != "" && string(pod.UID) != uid {
		writeErrorString(w, http.StatusNotFound, "pod not found")
		return
	}
	// Checked now so that a pod whose sandbox does not run is refused before the upgrade; each
	// forwarded connection looks the namespace up again.
	if _, err := s.host.PodNetNS(r.Context(), ns, name); err != nil {
		writeHostError(w, err)
		return
	}
	f := &forwarder{server: s, namespace: ns, name: name, uid: string(pod.UID)}
	if tunnel {
		serveTunneledPortForward(w, r, f)
		return
	}
	portforward.ServePortForward(w, r, f, name, string(pod.UID), opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// forwarder forwards the connections of one port-forward request to the pod it was made for.
type forwarder struct {
	server          *Server
	namespace, name string
	uid             string
}

// PortForward dials port in the pod's current network namespace, found anew for each
// connection as the kubelet does, so that a sandbox restarted during a long session is still
// reached; a pod of the same name made since the request began is not.
func (f *forwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	pod, err := f.server.findPod(ctx, f.namespace, f.name)
	if err != nil {
		return err
	}
	if pod == nil || string(pod.UID) != f.uid {
		return fmt.Errorf("port-forward to pod %s/%s: the pod (uid %s) is gone", f.namespace, f.name, f.uid)
	}
	netns, err := f.server.host.PodNetNS(ctx, f.namespace, f.name)
	if err != nil {
		return fmt.Errorf("port-forward to pod %s/%s: %w", f.namespace, f.name, err)
	}
	return f.server.host.PortForward(ctx, netns, port, stream)
}

// serveTunneledPortForward serves SPDY port-forward inside a WebSocket. The kubelet does it with
// the apiserver's TunnelingHandler, which proxies to its own streaming server; here the WebSocket
// is accepted with the tunnel subprotocol, wrapped as a net.Conn by client-go's
// TunnelingConnection, and handed to the streaming library as the connection an SPDY upgrade
// would have hijacked.
func serveTunneledPortForward(w http.ResponseWriter, r *http.Request, f *forwarder) {
	upgrader := gwebsocket.Upgrader{
		// The kube-apiserver or kubectl are the clients, never a browser: no origin to check.
		CheckOrigin:  func(*http.Request) bool { return true },
		Subprotocols: []string{portforward.WebsocketsSPDYTunnelingPortForwardV1},
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		slog.Info("kubelet server: unable to upgrade port-forward to a WebSocket tunnel", "err", err)
		return // the upgrader has answered
	}
	conn := clientportforward.NewTunnelingConnection("kubelet-server", ws)
	defer conn.Close()

	spdyReq := r.Clone(r.Context())
	spdyReq.Method = http.MethodPost
	spdyReq.Body = http.NoBody
	for _, h := range []string{wsstream.WebSocketProtocolHeader, "Sec-Websocket-Key", "Sec-Websocket-Version", httpstream.HeaderUpgrade, httpstream.HeaderProtocolVersion} {
		spdyReq.Header.Del(h)
	}
	spdyReq.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	spdyReq.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	spdyReq.Header.Set(httpstream.HeaderProtocolVersion, portforward.ProtocolV1Name)
	portforward.ServePortForward(&tunnelWriter{conn: conn, header: http.Header{}}, spdyReq, f, f.name, f.uid,
		&portforward.V4Options{}, streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// tunnelWriter is the ResponseWriter of an SPDY upgrade inside an established WebSocket: the
// WebSocket handshake already answered the client, so the upgrade's status and headers go
// nowhere, and hijacking yields the tunnel.
type tunnelWriter struct {
	conn     net.Conn
	header   http.Header
	hijacked bool
}

func (t *tunnelWriter) Header() http.Header { return t.header }

// Write refuses: anything written here (an upgrade refusal) has no HTTP response to go in.
func (t *tunnelWriter) Write(p []byte) (int, error) {
	slog.Info("kubelet server: port-forward tunnel refused", "msg", string(p))
	return 0, errors.New("the WebSocket tunnel carries no HTTP response")
}

func (t *tunnelWriter) WriteHeader(int) {}

func (t *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if t.hijacked {
		return nil, nil, errors.New("the WebSocket tunnel is already taken")
	}
	t.hijacked = true
	return t.conn, bufio.NewReadWriter(bufio.NewReader(t.conn), bufio.NewWriter(t.conn)), nil
}
