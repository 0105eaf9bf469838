package controlplane

import (
	"crypto/x509"
	"maps"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestGeneratePKI(t *testing.T) {
	p, err := generatePKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA.Cert)
	tests := []struct {
		name  string
		kp    *keyPair
		usage x509.ExtKeyUsage
		cn    string
		orgs  []string
	}{
		{"apiserver", p.APIServer, x509.ExtKeyUsageServerAuth, "kube-apiserver", nil},
		{"kubelet client", p.KubeletClient, x509.ExtKeyUsageClientAuth, "kube-apiserver-kubelet-client", []string{"system:masters"}},
		{"admin", p.Admin, x509.ExtKeyUsageClientAuth, "kubernetes-admin", []string{"system:masters"}},
		{"controller-manager", p.ControllerMgr, x509.ExtKeyUsageClientAuth, "system:kube-controller-manager", nil},
		{"scheduler", p.Scheduler, x509.ExtKeyUsageClientAuth, "system:kube-scheduler", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.kp.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tt.usage}}); err != nil {
				t.Fatalf("does not verify against the CA for %v: %v", tt.usage, err)
			}
			if tt.kp.Cert.Subject.CommonName != tt.cn || !slices.Equal(tt.kp.Cert.Subject.Organization, tt.orgs) {
				t.Errorf("subject %v, want CN=%s O=%v", tt.kp.Cert.Subject, tt.cn, tt.orgs)
			}
		})
	}
	for _, host := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", "10.96.0.1"} {
		if err := p.APIServer.Cert.VerifyHostname(host); err != nil {
			t.Errorf("apiserver certificate: %v", err)
		}
	}
}

func TestKubeconfig(t *testing.T) {
	for _, u := range []kubeconfigUser{
		{name: "kubernetes-admin", certPEM: []byte("CERT"), keyPEM: []byte("KEY")},
		{name: "tls-bootstrap-token-user", token: "abcdef.0123456789abcdef"},
	} {
		var cfg struct {
			Clusters []struct {
				Cluster map[string]string `json:"cluster"`
			} `json:"clusters"`
			Users []struct {
				Name string            `json:"name"`
				User map[string]string `json:"user"`
			} `json:"users"`
			CurrentContext string `json:"current-context"`
		}
		data := kubeconfig("https://127.0.0.1:6443", []byte("CA"), u)
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v\n%s", u.name, err, data)
		}
		if len(cfg.Clusters) != 1 || cfg.Clusters[0].Cluster["server"] != "https://127.0.0.1:6443" || cfg.Clusters[0].Cluster["certificate-authority-data"] != "Q0E=" {
			t.Errorf("%s: clusters %+v", u.name, cfg.Clusters)
		}
		want := map[string]string{"token": u.token}
		if u.token == "" {
			want = map[string]string{"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}
		}
		if len(cfg.Users) != 1 || cfg.Users[0].Name != u.name || !maps.Equal(cfg.Users[0].User, want) {
			t.Errorf("%s: users %+v, want user %v", u.name, cfg.Users, want)
		}
		if cfg.CurrentContext != u.name+"@podagent-test" {
			t.Errorf("%s: current-context %q", u.name, cfg.CurrentContext)
		}
	}
}
