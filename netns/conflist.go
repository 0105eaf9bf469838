package netns

import (
	"encoding/json"
	"fmt"
	"net"
)

// cniVersion is the newest CNI spec that Debian 12's containernetworking-plugins (1.1.1) speak.
const cniVersion = "1.0.0"

// NetworkConfig describes the pod network. Every name and directory in it is a setting, so that two
// agents (or a test beside a running agent) can share a host without touching each other's pods.
type NetworkConfig struct {
	// Name is the CNI network name; host-local keeps its reservations under IPAMDataDir/Name.
	Name string
	// Bridge is the Linux bridge the pods' veths are attached to.
	Bridge string
	// Subnet is the pod CIDR; the bridge takes its first address as the pods' gateway.
	Subnet string
	// IPAMDataDir holds host-local's IP reservations.
	IPAMDataDir string
}

// conflist returns the CNI configuration list for cfg: bridge with host-local IPAM, then portmap
// for hostPorts, the same chain containerd's CRI documentation uses with the standard plugins.
//
// The bridge's own ipMasq is off: Debian's bridge plugin (1.1.1) can only remove its per-pod NAT
// chain while the pod's network namespace still exists, so a namespace lost to a crash or an
// operator would leak it. The Network keeps one masquerade rule for the whole pod CIDR instead.
func conflist(cfg NetworkConfig) ([]byte, error) {
	if cfg.Name == "" || cfg.Bridge == "" || cfg.IPAMDataDir == "" {
		return nil, fmt.Errorf("pod network config: name, bridge and IPAM data directory are required")
	}
	if len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("pod network config: bridge name %q is longer than 15 characters", cfg.Bridge)
	}
	_, subnet, err := net.ParseCIDR(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("pod network config: pod CIDR %q: %w", cfg.Subnet, err)
	}
	list := map[string]any{
		"cniVersion": cniVersion,
		"name":       cfg.Name,
		"plugins": []map[string]any{
			{
				"type":        "bridge",
				"bridge":      cfg.Bridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": cfg.IPAMDataDir,
					"ranges":  [][]map[string]string{{{"subnet": subnet.String()}}},
					"routes":  []map[string]string{{"dst": defaultRoute(subnet)}},
				},
			},
			{
				"type":         "portmap",
				"capabilities": map[string]bool{"portMappings": true},
			},
		},
	}
	return json.Marshal(list)
}

func defaultRoute(subnet *net.IPNet) string {
	if subnet.IP.To4() != nil {
		return "0.0.0.0/0"
	}
	return "::/0"
}
