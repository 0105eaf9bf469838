package controlplane

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// NodeKubeconfig writes a kubeconfig for node name, with a client certificate for
// system:node:NAME in system:nodes signed by the cluster CA (what TLS bootstrap would give it),
// and returns its path.
func (c *Cluster) NodeKubeconfig(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(c.Dir, "nodes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	kp, err := c.pki.sign(dir, certSpec{name: name, cn: "system:node:" + name, orgs: []string{"system:nodes"},
		usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatalf("node %s certificate: %v", name, err)
	}
	path := filepath.Join(dir, name+".kubeconfig")
	if err := writeFile(path, kubeconfig(c.Server, c.pki.CA.CertPEM, kubeconfigUser{name: "system:node:" + name, certPEM: kp.CertPEM, keyPEM: kp.KeyPEM})); err != nil {
		t.Fatalf("node %s kubeconfig: %v", name, err)
	}
	return path
}
