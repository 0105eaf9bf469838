package netns

import (
	"errors"
	"fmt"
	"net"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
)

// masqueradeRule lets pods reach beyond the host: traffic from the pod CIDR to anywhere else
// leaves with the host's address. One rule per network, as kubenet had, instead of one per pod.
func masqueradeRule(cfg NetworkConfig) []string {
	return []string{
		"-s", cfg.Subnet, "!", "-d", cfg.Subnet,
		"-m", "comment", "--comment", "podagent: masquerade pods of network " + cfg.Name,
		"-j", "MASQUERADE",
	}
}

func (n *Network) iptables() (*iptables.IPTables, error) {
	ip, _, err := net.ParseCIDR(n.opts.Subnet)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", n.opts.Subnet, err)
	}
	proto := iptables.ProtocolIPv4
	if ip.To4() == nil {
		proto = iptables.ProtocolIPv6
	}
	ipt, err := iptables.NewWithProtocol(proto)
	if err != nil {
		return nil, fmt.Errorf("iptables for network %s: %w", n.opts.Name, err)
	}
	return ipt, nil
}

// ensureMasquerade installs the network's masquerade rule once per process.
func (n *Network) ensureMasquerade() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.masqueraded {
		return nil
	}
	ipt, err := n.iptables()
	if err != nil {
		return err
	}
	if err := ipt.AppendUnique("nat", "POSTROUTING", masqueradeRule(n.opts.NetworkConfig)...); err != nil {
		return fmt.Errorf("install masquerade rule for network %s: %w", n.opts.Name, err)
	}
	n.masqueraded = true
	return nil
}

// Destroy removes what the network itself put on the host, its masquerade rule and its bridge.
// Pods must be torn down first. The agent never calls it on exit, since pods outlive the agent;
// it is for uninstalling and for tests.
func (n *Network) Destroy() error {
	var errs []error
	if ipt, err := n.iptables(); err != nil {
		errs = append(errs, err)
	} else if err := ipt.DeleteIfExists("nat", "POSTROUTING", masqueradeRule(n.opts.NetworkConfig)...); err != nil {
		errs = append(errs, fmt.Errorf("remove masquerade rule of network %s: %w", n.opts.Name, err))
	}
	if l, err := netlink.LinkByName(n.opts.Bridge); err == nil {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete bridge %s of network %s: %w", n.opts.Bridge, n.opts.Name, err))
		}
	}
	n.mu.Lock()
	n.masqueraded = false
	n.mu.Unlock()
	return errors.Join(errs...)
}
