package apiserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// testKubeconfig is how a client reads a kubeconfig: declared apart from the writer's types so
// that a wrong field name there shows up here.
type testKubeconfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Clusters   []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthorityData []byte `json:"certificate-authority-data"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificateData []byte `json:"client-certificate-data"`
			ClientKeyData         []byte `json:"client-key-data"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster   string `json:"cluster"`
			User      string `json:"user"`
			Namespace string `json:"namespace"`
		} `json:"context"`
	} `json:"contexts"`
	CurrentContext string   `json:"current-context"`
	Preferences    struct{} `json:"preferences"`
}

func readTestKubeconfig(t *testing.T, path string) testKubeconfig {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg testKubeconfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatalf("parse kubeconfig: %v\n%s", err, data)
	}
	return cfg
}

// kubeconfigTLSConfig is the TLS configuration a client builds from the kubeconfig at path.
func kubeconfigTLSConfig(t *testing.T, path string) *tls.Config {
	t.Helper()
	cfg := readTestKubeconfig(t, path)
	if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 {
		t.Fatalf("kubeconfig has %d clusters and %d users, want one of each", len(cfg.Clusters), len(cfg.Users))
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cfg.Clusters[0].Cluster.CertificateAuthorityData) {
		t.Fatal("kubeconfig certificate-authority-data holds no certificate")
	}
	cert, err := tls.X509KeyPair(cfg.Users[0].User.ClientCertificateData, cfg.Users[0].User.ClientKeyData)
	if err != nil {
		t.Fatalf("kubeconfig client certificate: %v", err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

func TestWriteKubeconfig(t *testing.T) {
	p, err := LoadOrCreatePKI(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	// An existing file readable by all must end up 0600: it holds the admin's key.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteKubeconfig(path, "https://127.0.0.1:6443", p, "node-a"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("mode = %s, want 0600", fi.Mode())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the kubeconfig's directory, want 1 (no temporary file left)", len(entries))
	}

	cfg := readTestKubeconfig(t, path)
	if cfg.APIVersion != "v1" || cfg.Kind != "Config" || cfg.CurrentContext != "node-a" {
		t.Errorf("apiVersion %q kind %q current-context %q, want v1 Config node-a", cfg.APIVersion, cfg.Kind, cfg.CurrentContext)
	}
	if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 || len(cfg.Contexts) != 1 {
		t.Fatalf("%d clusters, %d users, %d contexts, want one of each", len(cfg.Clusters), len(cfg.Users), len(cfg.Contexts))
	}
	cl, u, ctx := cfg.Clusters[0], cfg.Users[0], cfg.Contexts[0]
	if cl.Cluster.Server != "https://127.0.0.1:6443" || !bytes.Equal(cl.Cluster.CertificateAuthorityData, p.CAPEM) {
		t.Errorf("cluster = %s %q, want the server and CA", cl.Cluster.Server, cl.Cluster.CertificateAuthorityData)
	}
	if !bytes.Equal(u.User.ClientCertificateData, p.AdminCertPEM) || !bytes.Equal(u.User.ClientKeyData, p.AdminKeyPEM) {
		t.Error("user does not hold the admin certificate and key")
	}
	if ctx.Name != "node-a" || ctx.Context.Cluster != cl.Name || ctx.Context.User != u.Name || ctx.Context.Namespace != "default" {
		t.Errorf("context = %+v, want node-a on cluster %s as user %s in namespace default", ctx, cl.Name, u.Name)
	}
}

func TestWriteKubeconfigInvalid(t *testing.T) {
	p, err := LoadOrCreatePKI(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, server, context string
		pki                   *PKI
	}{
		{name: "http server", server: "http://127.0.0.1:6443", context: "a", pki: p},
		{name: "no host", server: "https://", context: "a", pki: p},
		{name: "no context", server: "https://127.0.0.1:6443", pki: p},
		{name: "no PKI", server: "https://127.0.0.1:6443", context: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubeconfig")
			if err := WriteKubeconfig(path, tt.server, tt.pki, tt.context); err == nil {
				t.Fatal("no error")
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("kubeconfig written anyway: %v", err)
			}
		})
	}
}

// apiVersions is the kube-apiserver's answer to GET /api.
const apiVersions = `{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}`

func TestKubeconfigKubectl(t *testing.T) {
	const kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("kubectl not available: %v", err)
	}
	p, srv := startTestAPI(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, apiVersions)
	}))
	home := t.TempDir()
	path := filepath.Join(home, "kubeconfig")
	if err := WriteKubeconfig(path, srv.URL, p, "node-a"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", path, "get", "--raw", "/api")
	// A HOME of its own keeps kubectl's caches out of the user's.
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl get --raw /api: %v\n%s", err, stderr.Bytes())
	}
	var got, want any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode kubectl output %q: %v", out, err)
	}
	if err := json.Unmarshal([]byte(apiVersions), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kubectl printed %s, want %s", out, apiVersions)
	}
}
