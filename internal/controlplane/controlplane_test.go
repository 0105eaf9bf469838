package controlplane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/internal/controlplane"
)

const kubectl = "/usr/bin/kubectl"

// TestControlPlane starts a cluster, uses it as an admin and as a node joining by TLS bootstrap,
// and checks that stopping it leaves no process behind.
func TestControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	if err := controlplane.Check(controlplane.Options{}); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err) // CI runs `make test`, which builds the control plane first
		}
		t.Skip(err)
	}
	c := controlplane.Start(t, controlplane.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.AdminKubeconfig, "get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("kubectl get --raw /readyz: %v: %s", err, out)
	}

	// The e2e framework's suite setup needs it.
	if err := c.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/services/kubernetes", nil, nil); err != nil {
		t.Fatalf("services/default/kubernetes: %v", err)
	}

	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "podagent-test"}}
	if err := c.Do(ctx, http.MethodPost, "/api/v1/namespaces", ns, nil); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", c.AdminKubeconfig, "get", "namespace", "podagent-test", "-o", "jsonpath={.status.phase}").CombinedOutput()
	if err != nil || string(out) != "Active" {
		t.Fatalf("kubectl get namespace podagent-test: %v: %s", err, out)
	}

	// Join as a node the way the kubelet's TLS bootstrap does: authenticate with the token,
	// send a CSR for system:node:NAME, wait for kube-controller-manager to approve and sign it.
	token := c.BootstrapToken(t)
	bootstrapKubeconfig := c.BootstrapKubeconfig(t, token)
	out, err = exec.CommandContext(ctx, kubectl, "--kubeconfig", bootstrapKubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").CombinedOutput()
	if want := "system:bootstrap:" + strings.Split(token, ".")[0]; err != nil || string(out) != want {
		t.Fatalf("kubectl auth whoami with the bootstrap kubeconfig: %v: %q, want %q", err, out, want)
	}

	const node = "podagent-test-node"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := &certificatesv1.CertificateSigningRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: "certificates.k8s.io/v1", Kind: "CertificateSigningRequest"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}
	const csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
	if err := c.DoAs(ctx, nil, nil, token, http.MethodPost, csrs, csr, csr); err != nil {
		t.Fatalf("create CSR as the bootstrap user: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if err := c.DoAs(ctx, nil, nil, token, http.MethodGet, csrs+"/"+csr.Name, nil, csr); err != nil {
			t.Fatalf("get CSR %s as the bootstrap user: %v", csr.Name, err)
		}
		if c := condition(csr, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed); c != nil {
			t.Fatalf("CSR %s: %s: %s", csr.Name, c.Type, c.Message)
		}
		if condition(csr, certificatesv1.CertificateApproved) != nil && len(csr.Status.Certificate) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CSR %s not approved and issued within a minute: %+v", csr.Name, csr.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	block, _ := pem.Decode(csr.Status.Certificate)
	if block == nil {
		t.Fatalf("CSR %s: status.certificate is not PEM: %q", csr.Name, csr.Status.Certificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not chain to the cluster CA: %v", err)
	}

	// The issued certificate is a node's identity: the Node authorizer lets it list its pods.
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	var review authenticationv1.SelfSubjectReview
	review.APIVersion, review.Kind = "authentication.k8s.io/v1", "SelfSubjectReview"
	if err := c.DoAs(ctx, csr.Status.Certificate, keyPEM, "", http.MethodPost, "/apis/authentication.k8s.io/v1/selfsubjectreviews", &review, &review); err != nil {
		t.Fatalf("whoami with the issued certificate: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "system:node:"+node || !slices.Contains(u.Groups, "system:nodes") {
		t.Fatalf("issued certificate authenticates as %+v, want system:node:%s in system:nodes", u, node)
	}
	pods := "/api/v1/pods?fieldSelector=" + url.QueryEscape("spec.nodeName="+node)
	if err := c.DoAs(ctx, csr.Status.Certificate, keyPEM, "", http.MethodGet, pods, nil, nil); err != nil {
		t.Fatalf("list the node's pods with the issued certificate: %v", err)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if left, err := controlplane.Leftovers(c.Dir); err != nil || len(left) > 0 {
		t.Fatalf("after Stop: %v, processes left: %q", err, left)
	}
}

// condition returns the first true condition of csr among types, or nil.
func condition(csr *certificatesv1.CertificateSigningRequest, types ...certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequestCondition {
	for i, c := range csr.Status.Conditions {
		if slices.Contains(types, c.Type) && c.Status == corev1.ConditionTrue {
			return &csr.Status.Conditions[i]
		}
	}
	return nil
}
