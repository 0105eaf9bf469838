package controlplane

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// kubeconfigUser is how a kubeconfig authenticates: a client certificate or a bearer token.
type kubeconfigUser struct {
	name    string
	certPEM []byte
	keyPEM  []byte
	token   string
}

// kubeconfig renders a one-context kubeconfig with every credential inline, so the file stands
// alone: a test may copy it anywhere, or hand it to an agent running as another user.
func kubeconfig(server string, caPEM []byte, u kubeconfigUser) []byte {
	b64 := base64.StdEncoding.EncodeToString
	var user strings.Builder
	if u.token != "" {
		fmt.Fprintf(&user, "    token: %s\n", u.token)
	} else {
		fmt.Fprintf(&user, "    client-certificate-data: %s\n    client-key-data: %s\n", b64(u.certPEM), b64(u.keyPEM))
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: podagent-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
%scontexts:
- name: %s@podagent-test
  context:
    cluster: podagent-test
    user: %s
current-context: %s@podagent-test
preferences: {}
`, server, b64(caPEM), u.name, user.String(), u.name, u.name, u.name)
}
