package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/runtime"
)

// portForwardWebSocketProtocols are the WebSocket subprotocols that the streaming library serves
// for port-forward: the legacy channel protocols, which name the ports in the query. kubectl 1.31+
// first asks for SPDY tunnelled in a WebSocket (SPDY/3.1+portforward.k8s.io), which is refused
// here before any upgrade, and kubectl falls back to SPDY.
var portForwardWebSocketProtocols = []string{"", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"}

// podPortForward serves .../pods/NAME/portforward. Over SPDY the client names a port per stream;
// over a legacy WebSocket the query's ports (repeated or comma-separated) name them.
func (s *Server) podPortForward(w http.ResponseWriter, r *http.Request) {
	ports, err := parsePorts(r.URL.Query())
	if err != nil {
		writeError(w, err)
		return
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	// Checked now so that a pod that is missing or not running gets its Status before the upgrade;
	// each forwarded connection looks the sandbox up again.
	k, err := s.kubelet()
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := k.PodNetNS(r.Context(), ns, name); err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.store.Get(r.Context(), store.Pods, ns, name)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkUpgrade(r, portforward.SupportedProtocols, portForwardWebSocketProtocols); err != nil {
		writeError(w, err)
		return
	}
	if wsstream.IsWebSocketRequest(r) && len(ports) == 0 {
		writeError(w, apierrors.NewBadRequest("query parameter ports is required for port-forward over a WebSocket"))
		return
	}
	uid := string(obj.(*corev1.Pod).UID)
	f := &portForwarder{kubelet: k, store: s.store, namespace: ns, name: name, uid: uid}
	portforward.ServePortForward(w, r, f, name, uid, &portforward.V4Options{Ports: ports},
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// parsePorts reads the query's ports, as the kube-apiserver's PodPortForwardOptions.
func parsePorts(q url.Values) ([]int32, error) {
	var ports []int32
	for _, v := range q["ports"] {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil || n == 0 {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("ports: %q is not a port number between 1 and 65535", p))
			}
			ports = append(ports, int32(n))
		}
	}
	return ports, nil
}

// portForwarder forwards the connections of one port-forward request to the pod it was made for.
type portForwarder struct {
	kubelet         Kubelet
	store           *store.Store
	namespace, name string
	uid             string
}

// PortForward dials port in the pod's current sandbox, found anew for each connection as the
// kubelet does, so that a sandbox restarted during a long session is still reached; a pod of the
// same name made since the request began is not.
func (f *portForwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	obj, err := f.store.Get(ctx, store.Pods, f.namespace, f.name)
	if err != nil {
		return err
	}
	if uid := string(obj.(*corev1.Pod).UID); uid != f.uid {
		return fmt.Errorf("pod %s/%s was replaced (uid %s, forwarding to %s)", f.namespace, f.name, uid, f.uid)
	}
	netns, err := f.kubelet.PodNetNS(ctx, f.namespace, f.name)
	if err != nil {
		return err
	}
	return runtime.PortForward(ctx, netns, port, stream)
}
