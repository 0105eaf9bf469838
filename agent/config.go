// Package agent turns desired pods into running ones on this node and keeps them so.
package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/runtime"
)

// Config is everything the agent is told. Every default is set in DefaultConfig, with where it
// comes from, so that there is one place to audit them.
type Config struct {
	RootDir             string
	RunDir              string
	LogDir              string
	ContainerdAddress   string
	ContainerdNamespace string
	Snapshotter         string
	PodCIDR             string
	BridgeName          string
	CNIPluginDirs       []string
	NodeName            string
	NodeLabels          map[string]string
	// ContainerLogMaxSize and ContainerLogMaxFiles rotate each container's log.
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	// LogDriver is the binary containerd's shims start to write container logs: this one.
	LogDriver   string
	ManifestDir string
	ManifestURL string
	// RegistryMirrors lists, per registry host (docker.io), the mirrors tried before it.
	RegistryMirrors map[string][]string
	Listen          string
	// Kubeconfig, when set, makes the agent a node of the cluster it reaches (node mode): the
	// embedded API is not started.
	Kubeconfig string
	// BootstrapKubeconfig, when Kubeconfig does not hold a valid client certificate, gets one by
	// TLS bootstrap and writes Kubeconfig (<root-dir>/kubelet.kubeconfig unless given).
	BootstrapKubeconfig string
	// KubeletListen is where the kubelet API (logs, exec, port-forward, stats) is served in node
	// mode, for the cluster's apiserver; ClientCAFile verifies the client certificates it accepts.
	KubeletListen string
	ClientCAFile  string
	// NodeIP is the address the node reports (its InternalIP); empty: the default route's.
	NodeIP        string
	PauseImage    string
	ImageArchives []string
	ResolvConf    string
	// SyncPeriod is how often the manifest directory is re-read besides watching it.
	SyncPeriod time.Duration
	// HTTPCheckPeriod is how often the manifest URL is fetched.
	HTTPCheckPeriod time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		// The kubelet keeps its state in /var/lib/kubelet; podagent's own, beside it.
		RootDir: "/var/lib/podagent",
		// Per-boot state (network namespaces, /dev/shm mounts), as containerd's /run/containerd.
		RunDir: "/run/podagent",
		// The kubelet's pod log directory, where log shippers look.
		LogDir: "/var/log/pods",
		// The kubelet's containerLogMaxSize (10Mi) and containerLogMaxFiles (5).
		ContainerLogMaxSize:  logs.DefaultMaxSize,
		ContainerLogMaxFiles: logs.DefaultMaxFiles,
		// This binary, in its log driver mode.
		LogDriver: executable(),
		// containerd's default socket.
		ContainerdAddress: "/run/containerd/containerd.sock",
		// Our own containerd namespace: never "k8s.io", so a CRI kubelet on the same host is untouched.
		ContainerdNamespace: "podagent",
		// containerd's default snapshotter.
		Snapshotter: "overlayfs",
		// flannel's and kubeadm's customary pod network; a /16 holds far more than the kubelet's
		// default of 110 pods per node.
		PodCIDR: "10.244.0.0/16",
		// Linux interface names are at most 15 characters.
		BridgeName: "podagent0",
		// Debian's containernetworking-plugins, then the upstream install location.
		CNIPluginDirs: []string{"/usr/lib/cni", "/opt/cni/bin"},
		// The kubelet's default node name is the hostname, lowercased.
		NodeName: strings.ToLower(host),
		// Loopback only, with TLS (the API issue); the kube-apiserver's secure port.
		Listen: "127.0.0.1:6443",
		// The kubelet's port, on every address, as the kubelet's --address and --port.
		KubeletListen: "0.0.0.0:10250",
		// Built from cmd/pause by `make build` (no registry is needed).
		PauseImage: "localhost/podagent/pause:1.0",
		// Where `make build` puts the images it builds, beside the binary.
		ImageArchives: defaultImageArchives(),
		// On systemd-resolved hosts /etc/resolv.conf points at 127.0.0.53, unreachable from a pod;
		// kubeadm picks the real upstream file the same way.
		ResolvConf: defaultResolvConf(),
		// The directory is watched (fsnotify); this full re-read only catches what a watch missed.
		// The kubelet's --file-check-frequency is 20s.
		SyncPeriod: 20 * time.Second,
		// The kubelet's --http-check-frequency.
		HTTPCheckPeriod: 20 * time.Second,
	}
}

func executable() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return exe
}

func defaultResolvConf() string {
	const resolved = "/run/systemd/resolve/resolv.conf"
	if _, err := os.Stat(resolved); err == nil {
		return resolved
	}
	return "/etc/resolv.conf"
}

func defaultImageArchives() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	p := filepath.Join(filepath.Dir(exe), "images", "images.tar")
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	return []string{p}
}

// NetworkName is the CNI network name; it follows the bridge, so that two agents with different
// bridges keep apart.
func (c *Config) NetworkName() string { return c.BridgeName }

// Validate checks the configuration, naming the setting that is wrong.
func (c *Config) Validate() error {
	var errs []error
	for name, dir := range map[string]string{"root-dir": c.RootDir, "run-dir": c.RunDir, "log-dir": c.LogDir} {
		if !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path", name, dir))
		}
	}
	if _, _, err := net.ParseCIDR(c.PodCIDR); err != nil {
		errs = append(errs, fmt.Errorf("pod-cidr: %w", err))
	}
	if c.BridgeName == "" || len(c.BridgeName) > 15 {
		errs = append(errs, fmt.Errorf("bridge-name: %q must be 1 to 15 characters", c.BridgeName))
	}
	for _, msg := range validation.IsDNS1123Subdomain(c.NodeName) {
		errs = append(errs, fmt.Errorf("node-name: %q: %s", c.NodeName, msg))
	}
	for k, v := range c.NodeLabels {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("node-labels: key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("node-labels: value %q of %s: %s", v, k, msg))
		}
	}
	if c.ContainerdNamespace == "" {
		errs = append(errs, errors.New("containerd-namespace: must not be empty"))
	}
	if c.ContainerLogMaxSize <= 0 {
		errs = append(errs, fmt.Errorf("container-log-max-size: %d must be positive", c.ContainerLogMaxSize))
	}
	if c.ContainerLogMaxFiles < 2 {
		// As the kubelet: the file being written and at least one rotated one.
		errs = append(errs, fmt.Errorf("container-log-max-files: %d must be at least 2", c.ContainerLogMaxFiles))
	}
	if !filepath.IsAbs(c.LogDriver) {
		errs = append(errs, fmt.Errorf("log-driver: %q must be an absolute path", c.LogDriver))
	}
	if c.SyncPeriod <= 0 {
		errs = append(errs, fmt.Errorf("sync-period: %s must be positive", c.SyncPeriod))
	}
	if c.HTTPCheckPeriod <= 0 {
		errs = append(errs, fmt.Errorf("http-check-period: %s must be positive", c.HTTPCheckPeriod))
	}
	if c.ManifestURL != "" {
		if u, err := url.Parse(c.ManifestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("manifest-url: %q must be an http or https URL", c.ManifestURL))
		}
	}
	for host, mirrors := range c.RegistryMirrors {
		for _, m := range mirrors {
			if _, _, err := runtime.ParseRegistryMirror(host + "=" + m); err != nil {
				errs = append(errs, fmt.Errorf("registry-mirror: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
