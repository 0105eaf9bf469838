package apiserver

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// kubeconfig is the part of client-go's clientcmd/api/v1 Config that WriteKubeconfig fills.
// client-go is not a dependency, and these few fields do not justify one. []byte fields
// become base64 in YAML, as the *-data fields must be.
type kubeconfig struct {
	APIVersion     string            `json:"apiVersion"`
	Kind           string            `json:"kind"`
	Clusters       []kubeconfigNamed `json:"clusters"`
	Users          []kubeconfigNamed `json:"users"`
	Contexts       []kubeconfigNamed `json:"contexts"`
	CurrentContext string            `json:"current-context"`
	Preferences    struct{}          `json:"preferences"`
}

// kubeconfigNamed is a named cluster, user or context: exactly one of the pointers is set.
type kubeconfigNamed struct {
	Name    string             `json:"name"`
	Cluster *kubeconfigCluster `json:"cluster,omitempty"`
	User    *kubeconfigUser    `json:"user,omitempty"`
	Context *kubeconfigContext `json:"context,omitempty"`
}

type kubeconfigCluster struct {
	Server                   string `json:"server"`
	CertificateAuthorityData []byte `json:"certificate-authority-data"`
}

type kubeconfigUser struct {
	ClientCertificateData []byte `json:"client-certificate-data"`
	ClientKeyData         []byte `json:"client-key-data"`
}

type kubeconfigContext struct {
	Cluster   string `json:"cluster"`
	User      string `json:"user"`
	Namespace string `json:"namespace"`
}

// WriteKubeconfig writes to path a kubeconfig that reaches server (https://HOST:PORT) as the
// admin of p, with one cluster, user and context all named contextName (as kind does: the three
// are separate namespaces in a kubeconfig, and a name per node keeps merged kubeconfigs apart),
// namespace default, and that context current. It replaces path atomically with a file of
// mode 0600, whatever the mode of the file it replaces, since it holds the admin's key.
func WriteKubeconfig(path, server string, p *PKI, contextName string) error {
	data, err := kubeconfigYAML(server, p, contextName)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// kubeconfigYAML is the kubeconfig that WriteKubeconfig writes.
func kubeconfigYAML(server string, p *PKI, contextName string) ([]byte, error) {
	switch u, err := url.Parse(server); {
	case err != nil:
		return nil, fmt.Errorf("parse server URL: %w", err)
	case u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("server %q is not an https://HOST:PORT URL", server)
	case contextName == "":
		return nil, errors.New("empty context name")
	case p == nil || len(p.CAPEM) == 0 || len(p.AdminCertPEM) == 0 || len(p.AdminKeyPEM) == 0:
		return nil, errors.New("no CA or admin certificate")
	}
	cfg := kubeconfig{
		APIVersion: "v1",
		Kind:       "Config",
		Clusters: []kubeconfigNamed{{Name: contextName,
			Cluster: &kubeconfigCluster{Server: server, CertificateAuthorityData: p.CAPEM}}},
		Users: []kubeconfigNamed{{Name: contextName,
			User: &kubeconfigUser{ClientCertificateData: p.AdminCertPEM, ClientKeyData: p.AdminKeyPEM}}},
		Contexts: []kubeconfigNamed{{Name: contextName,
			Context: &kubeconfigContext{Cluster: contextName, User: contextName, Namespace: "default"}}},
		CurrentContext: contextName,
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode kubeconfig: %w", err)
	}
	return data, nil
}

// writeFileAtomic replaces path with data of mode perm, so that a reader (kubectl, or the next
// start of the agent) sees the old file or the new one, never a part: it writes a temporary
// file in the same directory (rename is atomic only within a file system), syncs it, renames
// it over path and syncs the directory so that the rename survives a crash. The temporary file
// is created 0600, so a key is never readable by others even for a moment.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (retErr error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	// Chmod, not the mode of an open: the umask does not apply to it.
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("set mode of %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", f.Name(), path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
