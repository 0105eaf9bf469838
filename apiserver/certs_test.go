package apiserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var testHosts = []string{"127.0.0.1", "::1", "localhost", "node-a"}

func TestLoadOrCreatePKIReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	now := time.Now()
	first, err := LoadOrCreatePKI(dir, testHosts, now)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	second, err := LoadOrCreatePKI(dir, testHosts, now.Add(time.Hour))
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !first.CA.Equal(second.CA) || !bytes.Equal(first.CAPEM, second.CAPEM) {
		t.Error("reload changed the CA")
	}
	if !bytes.Equal(first.ServingCert.Certificate[0], second.ServingCert.Certificate[0]) {
		t.Error("reload changed the serving certificate")
	}
	if !bytes.Equal(first.AdminCertPEM, second.AdminCertPEM) || !bytes.Equal(first.AdminKeyPEM, second.AdminKeyPEM) {
		t.Error("reload changed the admin certificate")
	}
}

func TestLoadOrCreatePKIRenewal(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name   string
		hosts  []string
		later  time.Duration
		mutate func(t *testing.T, dir string)
		// which certificates the second start must replace
		newCA, newServing, newAdmin bool
	}{
		{name: "same hosts", hosts: testHosts, later: time.Hour},
		{name: "fewer hosts", hosts: []string{"127.0.0.1", "LOCALHOST"}, later: time.Hour},
		{name: "new DNS name", hosts: append(slices.Clone(testHosts), "node-b"), later: time.Hour, newServing: true},
		{name: "new IP", hosts: append(slices.Clone(testHosts), "10.0.0.5"), later: time.Hour, newServing: true},
		{name: "leaves expire within 30 days", hosts: testHosts, later: 340 * day, newServing: true, newAdmin: true},
		{name: "CA expired", hosts: testHosts, later: 11 * 365 * day, newCA: true, newServing: true, newAdmin: true},
		{name: "CA key unreadable", hosts: testHosts, later: time.Hour, newCA: true, newServing: true, newAdmin: true,
			mutate: func(t *testing.T, dir string) { writeTestFile(t, filepath.Join(dir, "ca.key"), []byte("garbage")) }},
		{name: "CA certificate missing", hosts: testHosts, later: time.Hour, newCA: true, newServing: true, newAdmin: true,
			mutate: func(t *testing.T, dir string) { removeTestFile(t, filepath.Join(dir, "ca.crt")) }},
		{name: "serving key missing", hosts: testHosts, later: time.Hour, newServing: true,
			mutate: func(t *testing.T, dir string) { removeTestFile(t, filepath.Join(dir, "apiserver.key")) }},
		{name: "serving certificate of the admin key", hosts: testHosts, later: time.Hour, newServing: true,
			mutate: func(t *testing.T, dir string) {
				data, err := os.ReadFile(filepath.Join(dir, "admin.crt"))
				if err != nil {
					t.Fatal(err)
				}
				writeTestFile(t, filepath.Join(dir, "apiserver.crt"), data)
			}},
		{name: "admin certificate is the serving one", hosts: testHosts, later: time.Hour, newAdmin: true,
			mutate: func(t *testing.T, dir string) {
				for _, ext := range []string{".crt", ".key"} {
					data, err := os.ReadFile(filepath.Join(dir, "apiserver"+ext))
					if err != nil {
						t.Fatal(err)
					}
					writeTestFile(t, filepath.Join(dir, "admin"+ext), data)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			now := time.Now()
			before, err := LoadOrCreatePKI(dir, testHosts, now)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			later := now.Add(tt.later)
			after, err := LoadOrCreatePKI(dir, tt.hosts, later)
			if err != nil {
				t.Fatalf("reload: %v", err)
			}
			if got := !before.CA.Equal(after.CA); got != tt.newCA {
				t.Errorf("new CA = %v, want %v", got, tt.newCA)
			}
			if got := !bytes.Equal(before.ServingCert.Certificate[0], after.ServingCert.Certificate[0]); got != tt.newServing {
				t.Errorf("new serving certificate = %v, want %v", got, tt.newServing)
			}
			if got := !bytes.Equal(before.AdminCertPEM, after.AdminCertPEM); got != tt.newAdmin {
				t.Errorf("new admin certificate = %v, want %v", got, tt.newAdmin)
			}
			checkPKI(t, after, tt.hosts, later)

			// What was written is what the next start loads.
			again, err := LoadOrCreatePKI(dir, tt.hosts, later)
			if err != nil {
				t.Fatalf("load again: %v", err)
			}
			if !again.CA.Equal(after.CA) || !again.ServingCert.Leaf.Equal(after.ServingCert.Leaf) ||
				!bytes.Equal(again.AdminCertPEM, after.AdminCertPEM) {
				t.Error("third start replaced certificates the second one wrote")
			}
		})
	}
}

// checkPKI checks that p's certificates are the ones LoadOrCreatePKI promises, valid at now.
func checkPKI(t *testing.T, p *PKI, hosts []string, now time.Time) {
	t.Helper()
	if !p.CA.IsCA || p.CA.NotAfter.Sub(p.CA.NotBefore) < 10*365*24*time.Hour {
		t.Errorf("CA: IsCA %v, valid %s to %s, want a CA for 10 years", p.CA.IsCA, p.CA.NotBefore, p.CA.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.CA)

	serving := p.ServingCert.Leaf
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("verify serving certificate: %v", err)
	}
	for _, h := range hosts {
		if err := serving.VerifyHostname(h); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	if ip := net.ParseIP("10.9.9.9"); slices.ContainsFunc(serving.IPAddresses, ip.Equal) {
		t.Error("serving certificate has an address nobody asked for")
	}
	if d := serving.NotAfter.Sub(serving.NotBefore); d < 365*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("serving certificate valid for %s, want a year", d)
	}

	admin, err := parseKeyPair(p.AdminCertPEM, p.AdminKeyPEM)
	if err != nil {
		t.Fatalf("parse admin certificate: %v", err)
	}
	if _, err := admin.cert().Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify admin certificate: %v", err)
	}
	if s := admin.cert().Subject; s.CommonName != "podagent-admin" || !slices.Equal(s.Organization, []string{"system:masters"}) {
		t.Errorf("admin subject = %s, want CN=podagent-admin,O=system:masters", s)
	}
	if _, err := admin.cert().Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("admin certificate also serves: want client auth only")
	}

	for name, key := range map[string]any{"serving": p.ServingCert.PrivateKey, "admin": admin.tls.PrivateKey} {
		if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("%s key is %T, want ECDSA P-256", name, key)
		}
	}
}

func TestLoadOrCreatePKIFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "pki")
	if _, err := LoadOrCreatePKI(dir, testHosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"":              os.ModeDir | 0o700,
		"ca.key":        0o600,
		"apiserver.key": 0o600,
		"admin.key":     0o600,
		"ca.crt":        0o644,
		"apiserver.crt": 0o644,
		"admin.crt":     0o644,
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want)-1 {
		t.Errorf("%s holds %d files, want %d (no temporary files left)", dir, len(entries), len(want)-1)
	}
	for name, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("mode of %q = %s, want %s", name, fi.Mode(), mode)
		}
	}
}

func TestLoadOrCreatePKIHosts(t *testing.T) {
	tests := []struct {
		name    string
		hosts   []string
		wantErr bool
	}{
		{name: "none", hosts: nil, wantErr: true},
		{name: "empty name", hosts: []string{"localhost", " "}, wantErr: true},
		{name: "duplicates", hosts: []string{"127.0.0.1", "127.0.0.1", "::ffff:127.0.0.1", "Node", "node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadOrCreatePKI(t.TempDir(), tt.hosts, time.Now())
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (len(p.ServingCert.Leaf.IPAddresses) != 1 || len(p.ServingCert.Leaf.DNSNames) != 1) {
				t.Errorf("SANs = %v %v, want one of each", p.ServingCert.Leaf.IPAddresses, p.ServingCert.Leaf.DNSNames)
			}
		})
	}
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func removeTestFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
