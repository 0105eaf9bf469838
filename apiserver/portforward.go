package apiserver

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// portForwardWebSocketProtocols are the WebSocket subprotocols served for port-forward: SPDY
// tunnelled in a WebSocket, which kubectl 1.31+ asks for first, and the legacy channel protocols,
// which name the ports in the query.
var portForwardWebSocketProtocols = []string{"", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "SPDY/3.1+portforward.k8s.io"}

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
	if err := checkUpgrade(r, portforward.SupportedProtocols, portForwardWebSocketProtocols); err != nil {
		writeError(w, err)
		return
	}
	if wsstream.IsWebSocketRequest(r) && !slices.Contains(headerList(r.Header.Values("Sec-WebSocket-Protocol")), tunnelProtocol) && len(ports) == 0 {
		writeError(w, apierrors.NewBadRequest("query parameter ports is required for port-forward over a WebSocket"))
		return
	}
	// The kubelet names the ports of a legacy WebSocket "port", one value each.
	q := url.Values{}
	for _, p := range ports {
		q.Add("port", strconv.Itoa(int(p)))
	}
	proxyToKubelet(w, r, k, "/portForward/"+ns+"/"+name, q)
}

// tunnelProtocol is SPDY tunnelled in a WebSocket, whose streams name their ports.
const tunnelProtocol = "SPDY/3.1+portforward.k8s.io"

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
