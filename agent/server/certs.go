package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// serverTLSConfig is the kubelet's serving TLS: the node's certificate, or a self-signed one;
// with a client CA, client certificates are requested (not required: a token may stand in for
// one) and verified by the authenticator, as the kubelet does with tls.RequestClientCert.
func serverTLSConfig(opts Options) (*tls.Config, error) {
	certFile, keyFile := opts.CertFile, opts.KeyFile
	if certFile == "" || keyFile == "" {
		if opts.CertDir == "" {
			return nil, errors.New("kubelet server: a serving certificate or a directory for a self-signed one is required")
		}
		certFile = filepath.Join(opts.CertDir, "pki", "kubelet.crt")
		keyFile = filepath.Join(opts.CertDir, "pki", "kubelet.key")
		if err := ensureSelfSignedCert(certFile, keyFile, opts.NodeName, time.Now()); err != nil {
			return nil, err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the kubelet serving certificate %s: %w", certFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// Upgrades (SPDY, WebSocket) need HTTP/1.1: the kube-apiserver's proxy speaks it to kubelets.
		NextProtos: []string{"http/1.1"},
	}
	if opts.ClientCAFile != "" {
		pool, err := loadCAPool(opts.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequestClientCert
		cfg.ClientCAs = pool // only a hint to clients: the authenticator verifies, with reloads
	}
	return cfg, nil
}

// ensureSelfSignedCert writes a self-signed serving certificate for host to certFile and its key
// to keyFile unless both exist, as the kubelet does when given no certificate (its
// GenerateSelfSignedCertKey: one year, the host as DNS name or IP).
func ensureSelfSignedCert(certFile, keyFile, host string, now time.Time) error {
	if fileExists(certFile) && fileExists(keyFile) {
		return nil
	}
	certPEM, keyPEM, err := selfSignedCert(host, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o755); err != nil {
		return fmt.Errorf("create directory for the kubelet certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		return fmt.Errorf("create directory for the kubelet key: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write kubelet key %s: %w", keyFile, err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return fmt.Errorf("write kubelet certificate %s: %w", certFile, err)
	}
	return nil
}

// selfSignedCert is a PEM certificate and key for host, valid for a year from an hour ago.
func selfSignedCert(host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate kubelet serving key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", host, now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: its own trust anchor, as the kubelet's
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create kubelet serving certificate for %s: %w", host, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode kubelet serving key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
