package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TLSConfig returns the API server's TLS configuration: TLS 1.2 or later with the serving
// certificate, verifying any client certificate against the CA. A client certificate is asked
// for but not required, so that a client without one completes the handshake and gets a
// Kubernetes 401 from RequireClientCert instead of a bare TLS alert; a certificate from another
// CA still fails the handshake.
func (p *PKI) TLSConfig() *tls.Config {
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(p.CA)
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{p.ServingCert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clientCAs,
	}
}

// RequireClientCert passes to next only requests that came with a client certificate verified
// against the CA (see TLSConfig), and answers the others 401 Unauthorized with a Kubernetes
// Status, except on the health paths /healthz, /readyz and /livez, which the kube-apiserver
// also serves to anonymous clients (its system:public-info-viewer role) for load balancers and
// probes. The CA issues client certificates to the admin and to its node; the request's context
// carries which (isNode).
func RequireClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isAnonymousPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			writeError(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		var u user
		if chain := r.TLS.VerifiedChains[0]; len(chain) > 0 {
			u = user{name: chain[0].Subject.CommonName, groups: chain[0].Subject.Organization}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// user is who a request authenticated as: its certificate's common name and organizations, as
// the kube-apiserver reads them.
type user struct {
	name   string
	groups []string
}

type userKey struct{}

// isNode reports whether the request of ctx comes from a node (group system:nodes): the nodes
// alone write mirror pods, as the kube-apiserver's NodeRestriction admission lets a node do.
func isNode(ctx context.Context) bool {
	u, _ := ctx.Value(userKey{}).(user)
	return slices.Contains(u.groups, NodesGroup)
}

// NodesGroup is the group of the nodes' credentials, as the kube-apiserver's Node authorizer
// knows it.
const NodesGroup = "system:nodes"

// isAnonymousPath says whether path is served without authentication. Only the exact paths:
// the kube-apiserver's sub-checks such as /healthz/etcd need credentials.
func isAnonymousPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/livez":
		return true
	}
	return false
}
