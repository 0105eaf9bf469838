package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"

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
// probes. The CA issues client certificates to the admin only, so any verified one is the admin.
func RequireClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isAnonymousPath(r.URL.Path) && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			writeError(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isAnonymousPath says whether path is served without authentication. Only the exact paths:
// the kube-apiserver's sub-checks such as /healthz/etcd need credentials.
func isAnonymousPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/livez":
		return true
	}
	return false
}
