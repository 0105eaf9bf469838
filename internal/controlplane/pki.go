package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// keyPair is a certificate and its key, parsed and as PEM files on disk.
type keyPair struct {
	Cert     *x509.Certificate
	Key      crypto.Signer
	CertFile string
	KeyFile  string
	CertPEM  []byte
	KeyPEM   []byte
}

// certSpec describes a certificate that the cluster CA signs.
type certSpec struct {
	name     string // file name stem: NAME.crt, NAME.key
	cn       string
	orgs     []string
	dnsNames []string
	ips      []net.IP
	usages   []x509.ExtKeyUsage
}

// pki is every certificate and key the control plane needs, as kubeadm lays them out.
type pki struct {
	CA             *keyPair
	APIServer      *keyPair // serving cert for 127.0.0.1 and the in-cluster names
	KubeletClient  *keyPair // kube-apiserver's client cert towards the kubelet port
	Admin          *keyPair // O=system:masters
	ControllerMgr  *keyPair
	Scheduler      *keyPair
	SAKeyFile      string // service-account signing key (private)
	SAPubFile      string // its public key, for verification
	certValidity   time.Duration
	notBeforeSlack time.Duration
}

// The first address of --service-cluster-ip-range: the ClusterIP of services/default/kubernetes,
// which pods use to reach the apiserver, so the serving certificate names it.
var kubernetesServiceIP = net.IPv4(10, 96, 0, 1)

// ECDSA P-256 keys throughout: every component accepts them (the CA for csrsigning, ES256 for
// service-account tokens), and generating one takes microseconds where RSA 2048 takes up to a second.
func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// generatePKI writes a CA and every certificate the control plane uses into dir.
func generatePKI(dir string) (*pki, error) {
	p := &pki{certValidity: 365 * 24 * time.Hour, notBeforeSlack: time.Hour}
	var err error
	if p.CA, err = p.newCA(dir); err != nil {
		return nil, err
	}
	specs := []struct {
		dst  **keyPair
		spec certSpec
	}{
		{&p.APIServer, certSpec{
			name: "apiserver", cn: "kube-apiserver",
			dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			ips:      []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, kubernetesServiceIP},
			usages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		// kubeadm now uses O=kubeadm:cluster-admins (bound to cluster-admin); system:masters
		// needs no binding and is allowed by any webhook authorizer, the agent's included.
		{&p.KubeletClient, certSpec{name: "apiserver-kubelet-client", cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, usages: clientAuth}},
		{&p.Admin, certSpec{name: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}, usages: clientAuth}},
		{&p.ControllerMgr, certSpec{name: "controller-manager", cn: "system:kube-controller-manager", usages: clientAuth}},
		{&p.Scheduler, certSpec{name: "scheduler", cn: "system:kube-scheduler", usages: clientAuth}},
	}
	for _, s := range specs {
		if *s.dst, err = p.sign(dir, s.spec); err != nil {
			return nil, err
		}
	}
	saKey, err := newKey()
	if err != nil {
		return nil, err
	}
	p.SAKeyFile, p.SAPubFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	keyPEM, err := encodeKey(saKey)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	if err := writeFile(p.SAKeyFile, keyPEM); err != nil {
		return nil, err
	}
	if err := writeFile(p.SAPubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})); err != nil {
		return nil, err
	}
	return p, nil
}

var clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}

func (p *pki) newCA(dir string) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "podagent-test-ca"},
		NotBefore:             now.Add(-p.notBeforeSlack),
		NotAfter:              now.Add(p.certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return store(dir, "ca", der, key)
}

func (p *pki) sign(dir string, s certSpec) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    now.Add(-p.notBeforeSlack),
		NotAfter:     now.Add(p.certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  s.usages,
		DNSNames:     s.dnsNames,
		IPAddresses:  s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA.Cert, key.Public(), p.CA.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %s: %w", s.name, err)
	}
	return store(dir, s.name, der, key)
}

func store(dir, name string, der []byte, key *ecdsa.PrivateKey) (*keyPair, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	kp := &keyPair{
		Cert: cert, Key: key,
		CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: keyPEM,
	}
	if err := writeFile(kp.CertFile, kp.CertPEM); err != nil {
		return nil, err
	}
	if err := writeFile(kp.KeyFile, kp.KeyPEM); err != nil {
		return nil, err
	}
	return kp, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
