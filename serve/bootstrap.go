package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/certificate/csr"
)

// bootstrapTimeout bounds the wait for the cluster to approve and sign the node's CSR.
const bootstrapTimeout = 5 * time.Minute

// bootstrap gets the node its client certificate by TLS bootstrap, as the kubelet does: with the
// bootstrap kubeconfig (a bootstrap token) it sends a CSR for system:node:NAME in system:nodes to
// the kube-apiserver-client-kubelet signer, waits for the cluster to approve and sign it, and
// writes kubeconfig (0600, the key and certificate beside it in pki/) to reach the cluster as the
// node from then on. A kubeconfig whose certificate is still valid is kept.
func bootstrap(ctx context.Context, bootstrapKubeconfig, kubeconfig, pkiDir, node string) error {
	if certValid(kubeconfig, time.Now()) {
		return nil
	}
	bootCfg, err := clientcmd.BuildConfigFromFlags("", bootstrapKubeconfig)
	if err != nil {
		return fmt.Errorf("bootstrap kubeconfig %s: %w", bootstrapKubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(bootCfg)
	if err != nil {
		return fmt.Errorf("bootstrap client: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("node key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return fmt.Errorf("certificate request of node %s: %w", node, err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	slog.Info("TLS bootstrap: asking the cluster for the node's client certificate", "node", node)
	ctx, cancel := context.WithTimeout(ctx, bootstrapTimeout)
	defer cancel()
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, "", certificatesv1.KubeAPIServerClientKubeletSignerName, nil,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, key)
	if err != nil {
		return fmt.Errorf("send the node's CSR: %w", err)
	}
	certPEM, err := csr.WaitForCertificate(ctx, client, name, uid)
	if err != nil {
		return fmt.Errorf("wait for CSR %s to be approved and signed: %w", name, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := writeNodeKubeconfig(kubeconfig, pkiDir, bootCfg, certPEM, keyPEM); err != nil {
		return err
	}
	slog.Info("TLS bootstrap: the node's client certificate is signed", "node", node, "csr", name, "kubeconfig", kubeconfig)
	return nil
}

// writeNodeKubeconfig writes the key and certificate (as the kubelet's
// pki/kubelet-client-current.pem) and a kubeconfig that uses them to reach the cluster of boot.
func writeNodeKubeconfig(path, pkiDir string, boot *rest.Config, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", pkiDir, err)
	}
	pemFile := filepath.Join(pkiDir, "kubelet-client-current.pem")
	if err := os.WriteFile(pemFile, append(append([]byte{}, certPEM...), keyPEM...), 0o600); err != nil {
		return fmt.Errorf("write the node's client certificate: %w", err)
	}
	caData := boot.CAData
	if len(caData) == 0 && boot.CAFile != "" {
		var err error
		if caData, err = os.ReadFile(boot.CAFile); err != nil {
			return fmt.Errorf("read the cluster's CA: %w", err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["default-cluster"] = &clientcmdapi.Cluster{Server: boot.Host, CertificateAuthorityData: caData}
	cfg.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: pemFile, ClientKey: pemFile}
	cfg.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}
	cfg.CurrentContext = "default-context"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// certValid reports whether kubeconfig exists and its client certificate is valid at now for at
// least a day more.
func certValid(kubeconfig string, now time.Time) bool {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return false
	}
	data := cfg.CertData
	if len(data) == 0 && cfg.CertFile != "" {
		if data, err = os.ReadFile(cfg.CertFile); err != nil {
			return false
		}
	}
	for len(data) > 0 {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		return err == nil && now.After(c.NotBefore) && now.Add(24*time.Hour).Before(c.NotAfter)
	}
	return false
}
