package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PKI is the API's certificate authority with the two certificates it issues: the serving
// certificate of the API and the admin client certificate that goes into the kubeconfig.
type PKI struct {
	CA          *x509.Certificate
	CAPEM       []byte
	ServingCert tls.Certificate
	// AdminCertPEM and AdminKeyPEM authenticate a client as AdminCommonName in AdminGroup.
	AdminCertPEM, AdminKeyPEM []byte
	ca                        keyPair
}

// ClientCertificate issues a client certificate (PEM) for user in groups, signed by the CA and
// valid as long as its other leaves. It is written nowhere: the embedded API issues its node's
// credentials at each start.
func (p *PKI) ClientCertificate(user string, groups []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	leaf, err := newLeaf(p.ca, leafSpec{file: user, usage: x509.ExtKeyUsageClientAuth,
		subject: pkix.Name{CommonName: user, Organization: groups}}, now)
	if err != nil {
		return nil, nil, fmt.Errorf("issue client certificate for %s: %w", user, err)
	}
	return leaf.certPEM, leaf.keyPEM, nil
}

const (
	// AdminCommonName and AdminGroup are the admin's user and group, as kubeadm's
	// kubernetes-admin in system:masters: the group a kube-apiserver never authorizes away.
	AdminCommonName = "podagent-admin"
	AdminGroup      = "system:masters"

	servingCommonName = "podagent-apiserver"
	caCommonName      = "podagent-ca"

	// caValidity and leafValidity are kubeadm's lifetimes for its CA and for the certificates
	// the CA signs.
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore renews a certificate at start when it would expire within this window, so that
	// an agent restarted now and then never serves an expired one.
	renewBefore = 30 * 24 * time.Hour
	// backdate starts validity an hour early: a client whose clock is a little behind the
	// node's would otherwise reject a fresh certificate as not yet valid.
	backdate = time.Hour
)

// File names under the PKI directory, kubeadm's except for the admin pair.
const (
	caFile      = "ca"
	servingFile = "apiserver"
	adminFile   = "admin"
)

// keyPair is a certificate with its key, parsed and as written on disk.
type keyPair struct {
	tls             tls.Certificate // tls.Leaf is the parsed certificate
	certPEM, keyPEM []byte
}

func (k keyPair) cert() *x509.Certificate { return k.tls.Leaf }

// leafSpec says what a certificate signed by the CA must be: check accepts a loaded one, and
// template builds a new one.
type leafSpec struct {
	file    string
	subject pkix.Name
	usage   x509.ExtKeyUsage
	dns     []string
	ips     []net.IP
}

// LoadOrCreatePKI loads the CA, serving and admin certificates from dir, creating dir (0700) and
// any of them that is missing, unreadable or due for renewal at now. The CA is renewed when it
// cannot be read or expires within 30 days, and then every certificate with it, since they no
// longer verify. The serving certificate is renewed when it lacks one of hosts (IP addresses or
// DNS names) or expires within 30 days; the admin certificate when it expires within 30 days.
// Keys are ECDSA P-256, written 0600. A new CA invalidates any kubeconfig written before:
// callers rewrite the kubeconfig on each start.
func LoadOrCreatePKI(dir string, hosts []string, now time.Time) (*PKI, error) {
	serving, err := servingSpec(hosts)
	if err != nil {
		return nil, fmt.Errorf("load API certificates from %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create API certificate directory: %w", err)
	}

	ca, err := loadKeyPair(dir, caFile)
	if err == nil {
		err = checkCA(ca.cert(), now)
	}
	if err != nil {
		slog.Info("creating API certificate authority", "dir", dir, "reason", err)
		if ca, err = newCA(now); err != nil {
			return nil, err
		}
		if err := writeKeyPair(dir, caFile, ca); err != nil {
			return nil, err
		}
	}

	leaves := make(map[string]keyPair, 2)
	for _, spec := range []leafSpec{serving, adminSpec()} {
		leaf, err := loadKeyPair(dir, spec.file)
		if err == nil {
			err = spec.check(leaf.cert(), ca.cert(), now)
		}
		if err != nil {
			slog.Info("creating API certificate", "file", filepath.Join(dir, spec.file+".crt"), "reason", err)
			if leaf, err = newLeaf(ca, spec, now); err != nil {
				return nil, err
			}
			if err := writeKeyPair(dir, spec.file, leaf); err != nil {
				return nil, err
			}
		}
		leaves[spec.file] = leaf
	}

	return &PKI{
		CA:           ca.cert(),
		CAPEM:        ca.certPEM,
		ServingCert:  leaves[servingFile].tls,
		AdminCertPEM: leaves[adminFile].certPEM,
		AdminKeyPEM:  leaves[adminFile].keyPEM,
		ca:           ca,
	}, nil
}

// servingSpec is the serving certificate for hosts, each an IP address or a DNS name.
func servingSpec(hosts []string) (leafSpec, error) {
	spec := leafSpec{file: servingFile, subject: pkix.Name{CommonName: servingCommonName},
		usage: x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case h == "":
			return leafSpec{}, errors.New("empty host name for the serving certificate")
		case ip != nil:
			if !slices.ContainsFunc(spec.ips, ip.Equal) {
				spec.ips = append(spec.ips, ip)
			}
		default:
			// DNS names compare case-insensitively; lower case keeps the check below simple.
			if h = strings.ToLower(h); !slices.Contains(spec.dns, h) {
				spec.dns = append(spec.dns, h)
			}
		}
	}
	if len(spec.ips)+len(spec.dns) == 0 {
		return leafSpec{}, errors.New("no host names or addresses for the serving certificate")
	}
	return spec, nil
}

func adminSpec() leafSpec {
	return leafSpec{file: adminFile, usage: x509.ExtKeyUsageClientAuth,
		subject: pkix.Name{CommonName: AdminCommonName, Organization: []string{AdminGroup}}}
}

// checkCA says why ca should not be used at now, or nil.
func checkCA(ca *x509.Certificate, now time.Time) error {
	if !ca.IsCA {
		return errors.New("CA certificate is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := ca.Verify(opts); err != nil {
		return fmt.Errorf("verify CA certificate: %w", err)
	}
	if ca.NotAfter.Before(now.Add(renewBefore)) {
		return fmt.Errorf("CA certificate expires %s", ca.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// check says why leaf does not meet s, signed by ca and valid at now, or nil. Extra SANs are
// fine: only a missing one renews the serving certificate.
func (s leafSpec) check(leaf, ca *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{s.usage}}); err != nil {
		return fmt.Errorf("verify certificate %s: %w", s.file, err)
	}
	if leaf.NotAfter.Before(now.Add(renewBefore)) {
		return fmt.Errorf("certificate %s expires %s", s.file, leaf.NotAfter.Format(time.RFC3339))
	}
	if leaf.Subject.CommonName != s.subject.CommonName || !slices.Equal(leaf.Subject.Organization, s.subject.Organization) {
		return fmt.Errorf("certificate %s has subject %q, want %q", s.file, leaf.Subject, s.subject)
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return fmt.Errorf("certificate %s lacks IP address %s", s.file, ip)
		}
	}
	for _, name := range s.dns {
		if !slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, name) }) {
			return fmt.Errorf("certificate %s lacks DNS name %s", s.file, name)
		}
	}
	return nil
}

func newCA(now time.Time) (keyPair, error) {
	serial, err := newSerial()
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return signCertificate(tmpl, nil, nil)
}

func newLeaf(ca keyPair, s leafSpec, now time.Time) (keyPair, error) {
	serial, err := newSerial()
	if err != nil {
		return keyPair{}, err
	}
	// A certificate cannot outlive the CA that vouches for it.
	notAfter := now.Add(leafValidity)
	if caEnd := ca.cert().NotAfter; notAfter.After(caEnd) {
		notAfter = caEnd
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               s.subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{s.usage},
		BasicConstraintsValid: true,
		DNSNames:              s.dns,
		IPAddresses:           s.ips,
	}
	signer, ok := ca.tls.PrivateKey.(crypto.Signer)
	if !ok {
		return keyPair{}, fmt.Errorf("sign certificate %s: CA key of type %T cannot sign", s.file, ca.tls.PrivateKey)
	}
	return signCertificate(tmpl, ca.cert(), signer)
}

// signCertificate creates a P-256 key and a certificate from tmpl for it, signed by parent's key, or
// self-signed when parent is nil.
func signCertificate(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key for %s: %w", tmpl.Subject.CommonName, err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return keyPair{}, fmt.Errorf("create certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return keyPair{}, fmt.Errorf("encode key of %s: %w", tmpl.Subject.CommonName, err)
	}
	return parseKeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial number: %w", err)
	}
	return serial, nil
}

func parseKeyPair(certPEM, keyPEM []byte) (keyPair, error) {
	// X509KeyPair also checks that the key belongs to the certificate.
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return keyPair{}, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return keyPair{}, err
		}
	}
	return keyPair{tls: c, certPEM: certPEM, keyPEM: keyPEM}, nil
}

func loadKeyPair(dir, name string) (keyPair, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, name+".crt"))
	if err != nil {
		return keyPair{}, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key"))
	if err != nil {
		return keyPair{}, err
	}
	k, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		return keyPair{}, fmt.Errorf("parse %s.crt and %s.key: %w", name, name, err)
	}
	return k, nil
}

// writeKeyPair writes the key before the certificate: a crash in between leaves a pair that
// does not match, which the next start replaces.
func writeKeyPair(dir, name string, k keyPair) error {
	if err := writeFileAtomic(filepath.Join(dir, name+".key"), k.keyPEM, 0o600); err != nil {
		return fmt.Errorf("write key %s: %w", name, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, name+".crt"), k.certPEM, 0o644); err != nil {
		return fmt.Errorf("write certificate %s: %w", name, err)
	}
	return nil
}
