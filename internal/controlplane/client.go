package controlplane

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// httpClient trusts the cluster CA and, when client is set, presents that certificate.
func httpClient(ca *x509.Certificate, client *keyPair) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{client.Cert.Raw}, PrivateKey: client.Key, Leaf: client.Cert}}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

// insecureClient is for the health endpoints of kube-controller-manager and kube-scheduler,
// which serve with certificates they made themselves.
func insecureClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// StatusError is a non-2xx answer of kube-apiserver, with its Status object when it sent one.
type StatusError struct {
	Method, Path string
	Code         int
	Status       metav1.Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Status.Reason, e.Status.Message)
}

// Do sends a JSON request to kube-apiserver as the admin user (system:masters). in, when not nil,
// is the JSON body; out, when not nil, receives the JSON answer. A non-2xx answer is a
// *StatusError.
func (c *Cluster) Do(ctx context.Context, method, path string, in, out any) error {
	return do(ctx, c.admin, c.Server, "", method, path, in, out)
}

// DoAs is Do with a client certificate and key (PEM), or a bearer token when token is set.
func (c *Cluster) DoAs(ctx context.Context, certPEM, keyPEM []byte, token, method, path string, in, out any) error {
	client := httpClient(c.pki.CA.Cert, nil)
	if token == "" {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		client.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{pair}
	}
	return do(ctx, client, c.Server, token, method, path, in, out)
}

func do(ctx context.Context, client *http.Client, server, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Method: method, Path: path, Code: resp.StatusCode}
		if json.Unmarshal(b, &se.Status) != nil || se.Status.Message == "" {
			se.Status.Message = string(bytes.TrimSpace(b))
		}
		return se
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
