package controlplane

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BootstrapGroup is the extra group of the tokens BootstrapToken makes, as kubeadm's
// default node token.
const BootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"

// bootstrapBindings are the ClusterRoleBindings `kubeadm init` creates for TLS bootstrapping:
// bootstrappers may create CSRs and have their node-client CSRs approved, and nodes may renew
// their own client certificate.
var bootstrapBindings = []struct{ name, role, group string }{
	{"kubeadm:kubelet-bootstrap", "system:node-bootstrapper", BootstrapGroup},
	{"kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", BootstrapGroup},
	{"kubeadm:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes"},
}

// BootstrapToken creates a bootstrap token valid for a day (the Secret bootstrap-token-ID in
// kube-system, usable for authentication and signing, in group BootstrapGroup) and, on first use,
// kubeadm's TLS-bootstrap ClusterRoleBindings. It returns the token, "ID.SECRET".
func (c *Cluster) BootstrapToken(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.rbacOnce.Do(func() { c.rbacErr = c.createBootstrapBindings(ctx) })
	if c.rbacErr != nil {
		t.Fatalf("bootstrap RBAC: %v", c.rbacErr)
	}
	// Token format (see k8s.io/cluster-bootstrap/token/api): [a-z0-9]{6}.[a-z0-9]{16}.
	id, secret := randomToken(6), randomToken(16)
	s := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + id, Namespace: "kube-system"},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"description":                    "podagent test bootstrap token",
			"token-id":                       id,
			"token-secret":                   secret,
			"expiration":                     time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
			"usage-bootstrap-authentication": "true",
			"usage-bootstrap-signing":        "true",
			"auth-extra-groups":              BootstrapGroup,
		},
	}
	if err := c.Do(ctx, http.MethodPost, "/api/v1/namespaces/kube-system/secrets", s, nil); err != nil {
		t.Fatalf("create bootstrap token: %v", err)
	}
	return id + "." + secret
}

func (c *Cluster) createBootstrapBindings(ctx context.Context) error {
	for _, b := range bootstrapBindings {
		crb := &rbacv1.ClusterRoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
			ObjectMeta: metav1.ObjectMeta{Name: b.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: b.group}},
		}
		err := c.Do(ctx, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", crb, nil)
		var se *StatusError
		if err != nil && !(errors.As(err, &se) && se.Code == http.StatusConflict) {
			return err
		}
	}
	return nil
}

// BootstrapKubeconfig writes a kubeconfig that authenticates with token (from BootstrapToken)
// into a new temporary directory of t and returns its path: what `podagent serve` is given to
// join the cluster, as the kubelet's --bootstrap-kubeconfig.
func (c *Cluster) BootstrapKubeconfig(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bootstrap.kubeconfig")
	data := kubeconfig(c.Server, c.pki.CA.CertPEM, kubeconfigUser{name: "tls-bootstrap-token-user", token: token})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)] // a slight bias is harmless for test tokens
	}
	return string(b)
}
