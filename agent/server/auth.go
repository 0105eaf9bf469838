package server

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// UserInfo is an authenticated user, as k8s.io/apiserver's user.Info.
type UserInfo struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Authenticator authenticates a request. ok false with a nil error means the request carries
// no credential this authenticator knows; an error means a credential that failed. Both answer
// 401: the kubelet serves no anonymous request here.
type Authenticator interface {
	AuthenticateRequest(r *http.Request) (user *UserInfo, ok bool, err error)
}

// Attributes is one authorization question about a request, as the kubelet asks it: a resource
// request on the node object (apiVersion v1, resource nodes, name = node name).
type Attributes struct {
	User        UserInfo
	Verb        string
	APIVersion  string
	Resource    string
	Subresource string
	Name        string
	Path        string
}

// Authorizer decides whether a user may do what the attributes say. allowed false with a nil
// error is a denial (or no opinion); an error answers 500 as the kubelet's.
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (allowed bool, reason string, err error)
}

// The request paths whose subresource the kubelet maps specially (pkg/kubelet/server/auth.go).
const (
	statsPath         = "/stats/"
	metricsPath       = "/metrics"
	logsPath          = "/logs/"
	checkpointPath    = "/checkpoint/"
	statuszPath       = "/statusz"
	flagzPath         = "/flagz"
	podsPath          = "/pods"
	allocatedPodsPath = "/allocatedPods"
	runningPodsPath   = "/runningpods/"
	healthzPath       = "/healthz"
	configzPath       = "/configz"
)

// isSubpath is the kubelet's: path itself, or below it.
func isSubpath(subpath, path string) bool {
	path = strings.TrimSuffix(path, "/")
	return subpath == path || (strings.HasPrefix(subpath, path) && subpath[len(path)] == '/')
}

// requestAttributes are the kubelet's authorization attributes for a request, with
// KubeletFineGrainedAuthz (GA and locked on since 1.36): /pods, /runningpods and /allocatedPods
// first ask for nodes/pods, /healthz for nodes/healthz, /configz for nodes/configz, and each of
// those falls back to nodes/proxy; /stats is nodes/stats, /metrics nodes/metrics, /logs
// nodes/log; everything else (exec, attach, portForward, run, containerLogs) nodes/proxy. The
// request is allowed if any of them is.
func requestAttributes(nodeName string, u UserInfo, r *http.Request) []Attributes {
	verb := ""
	switch r.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodGet:
		verb = "get"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	p := r.URL.Path
	var subresources []string
	switch {
	case isSubpath(p, allocatedPodsPath), isSubpath(p, podsPath), isSubpath(p, runningPodsPath):
		subresources = append(subresources, "pods")
	case isSubpath(p, healthzPath):
		subresources = append(subresources, "healthz")
	case isSubpath(p, configzPath):
		subresources = append(subresources, "configz")
	}
	switch {
	case isSubpath(p, statsPath):
		subresources = append(subresources, "stats")
	case isSubpath(p, metricsPath):
		subresources = append(subresources, "metrics")
	case isSubpath(p, logsPath):
		subresources = append(subresources, "log") // as pods/log
	case isSubpath(p, checkpointPath):
		subresources = append(subresources, "checkpoint")
	case isSubpath(p, statuszPath):
		subresources = append(subresources, "statusz")
	case isSubpath(p, flagzPath):
		subresources = append(subresources, "configz")
	default:
		subresources = append(subresources, "proxy")
	}
	attrs := make([]Attributes, 0, len(subresources))
	for _, sub := range subresources {
		attrs = append(attrs, Attributes{User: u, Verb: verb, APIVersion: "v1", Resource: "nodes",
			Subresource: sub, Name: nodeName, Path: p})
	}
	return attrs
}

// authorize runs the kubelet's auth filter: 401 "Unauthorized" without a valid credential, 500
// on an authorization error, 403 with the kubelet's message when no attribute is allowed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	u, ok, err := s.authn.AuthenticateRequest(r)
	if err != nil {
		slog.Info("kubelet server: unable to authenticate the request", "path", r.URL.Path, "err", err)
	}
	if err != nil || !ok || u == nil {
		writeErrorString(w, http.StatusUnauthorized, "Unauthorized")
		return false
	}
	attrs := requestAttributes(s.nodeName, *u, r)
	var subresources []string
	for _, a := range attrs {
		subresources = append(subresources, a.Subresource)
		allowed, _, err := s.authz.Authorize(r.Context(), a)
		if err != nil {
			slog.Warn("kubelet server: authorization error", "user", u.Name, "verb", a.Verb, "subresource", a.Subresource, "err", err)
			writeErrorString(w, http.StatusInternalServerError, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)",
				u.Name, a.Verb, a.Resource, a.Subresource))
			return false
		}
		if allowed {
			return true
		}
	}
	writeErrorString(w, http.StatusForbidden, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)\n",
		u.Name, attrs[0].Verb, attrs[0].Resource, subresources))
	return false
}

// TokenAuthenticator authenticates a bearer token.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (user *UserInfo, ok bool, err error)
}

// BearerToken authenticates requests by their token: the Authorization header's bearer token,
// or, for a WebSocket (which browsers cannot give headers), the subprotocol
// base64url.bearer.authorization.k8s.io.<token>, as the kubelet's delegating authenticator.
type BearerToken struct {
	Tokens TokenAuthenticator
}

// wsTokenProtocolPrefix is the WebSocket subprotocol that carries a bearer token.
const wsTokenProtocolPrefix = "base64url.bearer.authorization.k8s.io."

// AuthenticateRequest implements Authenticator.
func (b BearerToken) AuthenticateRequest(r *http.Request) (*UserInfo, bool, error) {
	token, fromWS := bearerToken(r)
	if token == "" {
		return nil, false, nil
	}
	u, ok, err := b.Tokens.AuthenticateToken(r.Context(), token)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, fmt.Errorf("invalid bearer token")
	}
	if fromWS {
		// The token must not reach the streaming code as a subprotocol to negotiate.
		stripTokenProtocol(r)
	} else {
		r.Header.Del("Authorization")
	}
	return u, true, nil
}

// bearerToken is the request's bearer token and whether it came from a WebSocket subprotocol.
func bearerToken(r *http.Request) (string, bool) {
	parts := strings.SplitN(strings.TrimSpace(r.Header.Get("Authorization")), " ", 3)
	if len(parts) >= 2 && strings.EqualFold(parts[0], "bearer") && parts[1] != "" {
		return parts[1], false
	}
	for _, p := range headerList(r.Header.Values("Sec-WebSocket-Protocol")) {
		if enc, ok := strings.CutPrefix(p, wsTokenProtocolPrefix); ok {
			if tok, err := base64.RawURLEncoding.DecodeString(enc); err == nil && len(tok) > 0 {
				return string(tok), true
			}
		}
	}
	return "", false
}

func stripTokenProtocol(r *http.Request) {
	var keep []string
	for _, p := range headerList(r.Header.Values("Sec-WebSocket-Protocol")) {
		if !strings.HasPrefix(p, wsTokenProtocolPrefix) {
			keep = append(keep, p)
		}
	}
	r.Header.Del("Sec-WebSocket-Protocol")
	if len(keep) > 0 {
		r.Header.Set("Sec-WebSocket-Protocol", strings.Join(keep, ","))
	}
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

// denyTokens authenticates nothing: a server without a token authenticator.
type denyTokens struct{}

func (denyTokens) AuthenticateRequest(*http.Request) (*UserInfo, bool, error) { return nil, false, nil }

// x509Authenticator authenticates a client certificate that chains to the CA bundle in caFile,
// as the kubelet's --client-ca-file: the user is the certificate's CN, its groups the O
// entries. A request without a client certificate goes to next; one whose certificate does not
// verify fails. The bundle is read again when the file changes, as the kubelet reloads it.
type x509Authenticator struct {
	caFile string
	next   Authenticator

	mu      sync.Mutex
	modTime time.Time
	size    int64
	roots   *x509.CertPool
}

func (a *x509Authenticator) AuthenticateRequest(r *http.Request) (*UserInfo, bool, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return a.next.AuthenticateRequest(r)
	}
	roots, err := a.pool()
	if err != nil {
		return nil, false, err
	}
	certs := r.TLS.PeerCertificates
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, false, fmt.Errorf("verify client certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	if certs[0].Subject.CommonName == "" {
		return a.next.AuthenticateRequest(r) // a certificate naming nobody, as the apiserver's: try the token
	}
	return &UserInfo{Name: certs[0].Subject.CommonName, Groups: certs[0].Subject.Organization}, true, nil
}

// pool is the CA bundle, read again if the file changed since the last read.
func (a *x509Authenticator) pool() (*x509.CertPool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, err := os.Stat(a.caFile)
	if err != nil {
		if a.roots != nil {
			return a.roots, nil // keep the last good bundle while the file is being replaced
		}
		return nil, fmt.Errorf("read client CA bundle: %w", err)
	}
	if a.roots != nil && fi.ModTime().Equal(a.modTime) && fi.Size() == a.size {
		return a.roots, nil
	}
	roots, err := loadCAPool(a.caFile)
	if err != nil {
		if a.roots != nil {
			return a.roots, nil
		}
		return nil, err
	}
	a.roots, a.modTime, a.size = roots, fi.ModTime(), fi.Size()
	return roots, nil
}

// loadCAPool reads a PEM bundle of CA certificates.
func loadCAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read client CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("client CA bundle %s holds no PEM certificate", file)
	}
	return pool, nil
}
