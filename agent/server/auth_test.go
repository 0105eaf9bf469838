package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		verb         string
		subresources []string
	}{
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/runningpods/", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/healthz/ping", "get", []string{"healthz", "proxy"}},
		{"GET", "/configz", "get", []string{"configz", "proxy"}},
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"POST", "/stats/summary", "create", []string{"stats"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/metrics/resource", "get", []string{"metrics"}},
		{"GET", "/logs/syslog", "get", []string{"log"}},
		{"GET", "/containerLogs/ns/p/c", "get", []string{"proxy"}},
		{"POST", "/exec/ns/p/c", "create", []string{"proxy"}},
		{"GET", "/exec/ns/p/c", "get", []string{"proxy"}},
		{"PUT", "/x", "update", []string{"proxy"}},
		{"PATCH", "/x", "patch", []string{"proxy"}},
		{"DELETE", "/x", "delete", []string{"proxy"}},
		{"GET", "/podsX", "get", []string{"proxy"}}, // not a subpath of /pods
		{"GET", "/statsX", "get", []string{"proxy"}},
	}
	u := UserInfo{Name: "alice"}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		attrs := requestAttributes(testNode, u, r)
		var subs []string
		for _, a := range attrs {
			subs = append(subs, a.Subresource)
			if a.Verb != tt.verb || a.Resource != "nodes" || a.Name != testNode || a.APIVersion != "v1" || a.User.Name != "alice" {
				t.Errorf("%s %s: attributes %+v", tt.method, tt.path, a)
			}
		}
		if !reflect.DeepEqual(subs, tt.subresources) {
			t.Errorf("%s %s: subresources %v, want %v", tt.method, tt.path, subs, tt.subresources)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	e := newTestEnv(t, nil)
	e.authz.allow["viewer"] = []string{"stats", "pods"}
	tests := []struct {
		name, method, path, token string
		code                      int
		body                      string
	}{
		{"anonymous", "GET", "/healthz", "", 401, "Unauthorized"},
		{"unknown token", "GET", "/pods", "who-token", 401, "Unauthorized"},
		{"review error", "GET", "/pods", "broken-token", 401, "Unauthorized"},
		{"denied exec", "POST", "/exec/ns/web/app?command=echo&stdout=1", "viewer-token", 403,
			"Forbidden (user=viewer, verb=create, resource=nodes, subresource(s)=[proxy])\n"},
		{"denied healthz", "GET", "/healthz", "viewer-token", 403,
			"Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n"},
		{"denied metrics", "GET", "/metrics/resource", "viewer-token", 403,
			"Forbidden (user=viewer, verb=get, resource=nodes, subresource(s)=[metrics])\n"},
		{"allowed stats", "GET", "/stats/summary", "viewer-token", 200, ""},
		{"allowed pods by nodes/pods", "GET", "/pods", "viewer-token", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := e.do(t, tt.method, tt.path, tt.token)
			if code != tt.code || (tt.body != "" && body != tt.body) {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
		})
	}
	e.authz.err = errors.New("webhook down")
	code, body, _ := e.do(t, "GET", "/pods", "viewer-token")
	if want := "Authorization error (user=viewer, verb=get, resource=nodes, subresource=pods)"; code != 500 || body != want {
		t.Errorf("authorization error = %d %q, want 500 %q", code, body, want)
	}
}

// TestWebSocketTokenProtocol authenticates a token carried as a WebSocket subprotocol, and
// strips it before the streaming code negotiates.
func TestWebSocketTokenProtocol(t *testing.T) {
	r := httptest.NewRequest("GET", "/exec/ns/p/c", nil)
	r.Header.Set("Sec-WebSocket-Protocol", "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io."+
		base64.RawURLEncoding.EncodeToString([]byte("admin-token")))
	u, ok, err := BearerToken{Tokens: fakeTokens{}}.AuthenticateRequest(r)
	if err != nil || !ok || u.Name != "admin" {
		t.Fatalf("AuthenticateRequest = %v %v %v", u, ok, err)
	}
	if got := r.Header.Get("Sec-WebSocket-Protocol"); got != "v5.channel.k8s.io" {
		t.Errorf("protocols left = %q", got)
	}
}

// testCA is a CA that signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client is a TLS client certificate for cn in groups, signed by the CA.
func (ca *testCA) client(t *testing.T, cn string, groups ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestClientCertificates(t *testing.T) {
	ca, other := newTestCA(t, "cluster-ca"), newTestCA(t, "other-ca")
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(o *Options) { o.ClientCAFile = caFile })
	e.authz.allow["kube-apiserver-kubelet-client"] = []string{"proxy"}
	tests := []struct {
		name  string
		cert  *tls.Certificate
		token string
		code  int
	}{
		{"apiserver client certificate", ptr(ca.client(t, "kube-apiserver-kubelet-client", "kubelet-api-admins")), "", 200},
		{"certificate of another CA", ptr(other.client(t, "kube-apiserver-kubelet-client")), "", 401},
		{"certificate of another CA with a good token", ptr(other.client(t, "x")), "admin-token", 401},
		{"no certificate, a token", nil, "admin-token", 200},
		{"certificate of a user not allowed", ptr(ca.client(t, "mallory")), "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{InsecureSkipVerify: true}
			if tt.cert != nil {
				cfg.Certificates = []tls.Certificate{*tt.cert}
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			req, _ := http.NewRequest("POST", e.srv.URL+"/run/ns/web/app?cmd=echo+hi", nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, tt.code)
			}
		})
	}
	// The groups reach the authorizer.
	for _, a := range e.authz.asked {
		if a.User.Name == "kube-apiserver-kubelet-client" && !reflect.DeepEqual(a.User.Groups, []string{"kubelet-api-admins"}) {
			t.Errorf("groups = %v", a.User.Groups)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestTTLCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newTTLCache[int](time.Minute, 10*time.Second)
	c.now = func() time.Time { return now }
	c.put("allowed", 1, true)
	c.put("denied", 0, false)
	now = now.Add(20 * time.Second)
	if _, ok := c.get("denied"); ok {
		t.Error("a denial outlived its TTL")
	}
	if v, ok := c.get("allowed"); !ok || v != 1 {
		t.Error("an allowed answer expired early")
	}
	now = now.Add(time.Minute)
	if _, ok := c.get("allowed"); ok {
		t.Error("an allowed answer outlived its TTL")
	}
}
