package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// unauthorizedBody is the kube-apiserver's answer to a request without credentials.
const unauthorizedBody = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`

func TestRequireClientCert(t *testing.T) {
	verified := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}
	tests := []struct {
		name     string
		path     string
		tls      *tls.ConnectionState
		wantCode int
	}{
		{name: "verified client", path: "/api", tls: verified, wantCode: http.StatusOK},
		{name: "no TLS", path: "/api", wantCode: http.StatusUnauthorized},
		{name: "TLS without client certificate", path: "/api/v1/pods", tls: &tls.ConnectionState{}, wantCode: http.StatusUnauthorized},
		{name: "healthz", path: "/healthz", tls: &tls.ConnectionState{}, wantCode: http.StatusOK},
		{name: "readyz without TLS", path: "/readyz", wantCode: http.StatusOK},
		{name: "livez", path: "/livez", tls: &tls.ConnectionState{}, wantCode: http.StatusOK},
		{name: "healthz check", path: "/healthz/etcd", tls: &tls.ConnectionState{}, wantCode: http.StatusUnauthorized},
		{name: "root", path: "/", tls: &tls.ConnectionState{}, wantCode: http.StatusUnauthorized},
	}
	h := RequireClientCert(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			r.TLS = tt.tls
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d", w.Code, tt.wantCode)
			}
			if tt.wantCode == http.StatusUnauthorized {
				checkUnauthorized(t, w.Result())
			} else if w.Body.String() != "ok" {
				t.Errorf("body = %q, want the handler's", w.Body)
			}
		})
	}
}

// TestAuthTLS runs RequireClientCert behind TLSConfig on a real TLS server.
func TestAuthTLS(t *testing.T) {
	p, srv := startTestAPI(t, okHandler())
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := WriteKubeconfig(kubeconfig, srv.URL, p, "node-a"); err != nil {
		t.Fatal(err)
	}
	admin := kubeconfigTLSConfig(t, kubeconfig)

	anonymous := &tls.Config{RootCAs: admin.RootCAs, MinVersion: tls.VersionTLS12}

	other, err := LoadOrCreatePKI(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherCert, err := tls.X509KeyPair(other.AdminCertPEM, other.AdminKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tls.Config{RootCAs: admin.RootCAs, Certificates: []tls.Certificate{otherCert}, MinVersion: tls.VersionTLS12}

	tests := []struct {
		name     string
		client   *tls.Config
		path     string
		wantCode int // 0: the handshake must fail
		// rejected accepts a TLS failure or a 401: which one a foreign certificate gets
		// depends on when TLS 1.3 reports the server's alert.
		rejected bool
	}{
		{name: "admin from kubeconfig", client: admin, path: "/api", wantCode: http.StatusOK},
		{name: "admin healthz", client: admin, path: "/healthz", wantCode: http.StatusOK},
		{name: "no client certificate", client: anonymous, path: "/api", wantCode: http.StatusUnauthorized},
		{name: "no client certificate healthz", client: anonymous, path: "/healthz", wantCode: http.StatusOK},
		{name: "no client certificate livez", client: anonymous, path: "/livez", wantCode: http.StatusOK},
		{name: "certificate of another CA", client: foreign, path: "/api", rejected: true},
		{name: "TLS 1.1", client: &tls.Config{RootCAs: admin.RootCAs, MaxVersion: tls.VersionTLS11}, path: "/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: tt.client}, Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			resp, err := c.Get(srv.URL + tt.path)
			if err != nil {
				if tt.wantCode != 0 {
					t.Fatalf("GET %s: %v", tt.path, err)
				}
				return
			}
			defer resp.Body.Close()
			switch {
			case tt.rejected && resp.StatusCode == http.StatusUnauthorized:
				checkUnauthorized(t, resp)
			case tt.rejected || tt.wantCode == 0:
				t.Fatalf("GET %s answered %s, want a rejection", tt.path, resp.Status)
			case resp.StatusCode != tt.wantCode:
				t.Fatalf("GET %s answered %s, want %d", tt.path, resp.Status, tt.wantCode)
			case tt.wantCode == http.StatusUnauthorized:
				checkUnauthorized(t, resp)
			}
		})
	}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
}

// startTestAPI serves h behind RequireClientCert and TLSConfig on 127.0.0.1, with a new PKI.
func startTestAPI(t *testing.T, h http.Handler) (*PKI, *httptest.Server) {
	t.Helper()
	p, err := LoadOrCreatePKI(t.TempDir(), []string{"127.0.0.1", "::1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(RequireClientCert(h))
	srv.TLS = p.TLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return p, srv
}

func checkUnauthorized(t *testing.T, resp *http.Response) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode body %q: %v", body, err)
	}
	if err := json.Unmarshal([]byte(unauthorizedBody), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body = %s, want %s", body, unauthorizedBody)
	}
}
