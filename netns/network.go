package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Options configure a Network.
type Options struct {
	NetworkConfig
	// PluginDirs are searched for the CNI plugin binaries (Debian: /usr/lib/cni).
	PluginDirs []string
	// CacheDir is libcni's result cache, needed for a correct DEL after an agent restart.
	CacheDir string
	// NamespaceDir holds the pods' bind-mounted network namespaces, one file per sandbox.
	NamespaceDir string
}

// Network attaches pod sandboxes to the pod network.
type Network struct {
	opts Options
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList

	mu          sync.Mutex
	masqueraded bool
}

// Pod identifies a pod to the CNI plugins (through CNI_ARGS, as the kubelet does) and carries the
// hostPort mappings that portmap needs.
type Pod struct {
	Namespace, Name, UID string
	PortMappings         []PortMapping
}

// PortMapping is one hostPort of a pod, in the shape of portmap's runtimeConfig.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Attachment is a sandbox's network namespace and the addresses CNI gave it.
type Attachment struct {
	Path string
	IPs  []net.IP
}

// New returns a Network for opts. It writes nothing; the bridge is created by the first Setup.
func New(opts Options) (*Network, error) {
	raw, err := conflist(opts.NetworkConfig)
	if err != nil {
		return nil, err
	}
	list, err := libcni.NetworkConfFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("parse CNI configuration for network %s: %w", opts.Name, err)
	}
	if opts.NamespaceDir == "" || opts.CacheDir == "" {
		return nil, errors.New("pod network: namespace and cache directories are required")
	}
	return &Network{
		opts: opts,
		cni:  libcni.NewCNIConfigWithCacheDir(opts.PluginDirs, opts.CacheDir, nil),
		list: list,
	}, nil
}

// pluginTimeout bounds one CNI ADD or DEL of the whole plugin chain.
const pluginTimeout = time.Minute

// Path is where the network namespace of sandboxID is mounted.
func (n *Network) Path(sandboxID string) string {
	return filepath.Join(n.opts.NamespaceDir, sandboxID)
}

// Config returns the configuration the network was made with.
func (n *Network) Config() NetworkConfig { return n.opts.NetworkConfig }

// Setup creates the network namespace of sandboxID, brings its loopback up and runs CNI ADD.
// On failure everything it did is undone.
func (n *Network) Setup(ctx context.Context, sandboxID string, pod Pod) (_ *Attachment, retErr error) {
	if err := n.ensureMasquerade(); err != nil {
		return nil, err
	}
	path := n.Path(sandboxID)
	if err := Create(path); err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	defer func() {
		if retErr != nil {
			// A fresh context: the caller's may be what was cancelled.
			if err := n.Teardown(context.WithoutCancel(ctx), sandboxID, pod); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	if err := loopbackUp(path); err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	// Not cut short by the caller (the agent stopping): a plugin killed midway may leave a child
	// (host-local) that reserves an IP after the cleanup's DEL has run.
	addCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pluginTimeout)
	defer cancel()
	res, err := n.cni.AddNetworkList(addCtx, n.list, n.runtimeConf(sandboxID, path, pod))
	if err != nil {
		return nil, fmt.Errorf("CNI ADD for pod %s/%s on network %s: %w", pod.Namespace, pod.Name, n.opts.Name, err)
	}
	result, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result for pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	att := &Attachment{Path: path}
	for _, ip := range result.IPs {
		att.IPs = append(att.IPs, ip.Address.IP)
	}
	if len(att.IPs) == 0 {
		return nil, fmt.Errorf("CNI ADD for pod %s/%s on network %s returned no IP", pod.Namespace, pod.Name, n.opts.Name)
	}
	return att, nil
}

// Teardown runs CNI DEL for sandboxID and removes its network namespace. DEL runs even when the
// namespace is already gone, so that IP reservations and iptables rules never leak; the namespace
// is kept when DEL fails, so that a retry can still reach it.
func (n *Network) Teardown(ctx context.Context, sandboxID string, pod Pod) error {
	path := n.Path(sandboxID)
	nsPath := path
	if !IsMounted(path) {
		nsPath = ""
	}
	rt := n.runtimeConf(sandboxID, nsPath, pod)
	// DEL must be given what ADD was: portmap removes a sandbox's hostPort rules only when told
	// its portMappings, and the callers that remove a sandbox by ID (its pod's spec gone, or never
	// known after a restart) cannot. libcni cached ADD's arguments with its result: use them.
	_, cached, err := n.cni.GetNetworkListCachedConfig(n.list, rt)
	if err != nil {
		return fmt.Errorf("CNI cache of pod %s/%s (sandbox %s) on network %s: %w", pod.Namespace, pod.Name, sandboxID, n.opts.Name, err)
	}
	if cached != nil {
		rt = cached
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pluginTimeout)
	defer cancel()
	if err := n.cni.DelNetworkList(ctx, n.list, rt); err != nil {
		return fmt.Errorf("CNI DEL for pod %s/%s (sandbox %s) on network %s: %w", pod.Namespace, pod.Name, sandboxID, n.opts.Name, err)
	}
	return Remove(path)
}

// Sandboxes lists the sandbox IDs that have a network namespace file, mounted or not, so that a
// restarted agent can find what a crash left behind.
func (n *Network) Sandboxes() ([]string, error) {
	entries, err := os.ReadDir(n.opts.NamespaceDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces in %s: %w", n.opts.NamespaceDir, err)
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids, nil
}

// Reservations lists the IPs host-local holds for this network, each with the sandbox ID that owns it.
func (n *Network) Reservations() (map[string]string, error) {
	dir := filepath.Join(n.opts.IPAMDataDir, n.opts.Name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list IP reservations in %s: %w", dir, err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue // last_reserved_ip.0, lock
		}
		owner, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read IP reservation %s: %w", e.Name(), err)
		}
		// host-local writes "<containerID>\r\n<ifname>".
		out[e.Name()] = strings.TrimSpace(strings.SplitN(string(owner), "\n", 2)[0])
	}
	return out, nil
}

func (n *Network) runtimeConf(sandboxID, nsPath string, pod Pod) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: sandboxID,
		NetNS:       nsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", sandboxID},
			{"K8S_POD_UID", pod.UID},
		},
	}
	if len(pod.PortMappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pod.PortMappings}
	}
	return rt
}

func loopbackUp(path string) error {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return fmt.Errorf("netlink in network namespace %s: %w", path, err)
	}
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find loopback in network namespace %s: %w", path, err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring loopback up in network namespace %s: %w", path, err)
	}
	return nil
}
