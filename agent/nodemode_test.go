package agent_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/internal/controlplane"
)

// nodeConfig is the configuration of an agent that joins cluster as node name, in node mode: the
// cluster's kubeconfig for the node, the kubelet API on a free 127.0.0.1 port (the node's
// InternalIP, where the cluster's apiserver reaches it), and the cluster's CA for the
// apiserver's client certificate.
func nodeConfig(t *testing.T, cluster *controlplane.Cluster, name string) agent.Config {
	t.Helper()
	cfg := testConfig(t, name)
	cfg.Kubeconfig = cluster.NodeKubeconfig(t, name)
	cfg.KubeletListen = freeAddr(t)
	cfg.NodeIP = "127.0.0.1"
	cfg.ClientCAFile = cluster.CACert
	return cfg
}

// Issue 10, acceptance 2: podagent as the node of a real control plane (kube-apiserver,
// kube-scheduler and kube-controller-manager built from the Go module proxy). Two agents join
// as two nodes with their own directories, bridges and pod CIDRs; the seed walkthrough runs with
// kubectl 1.27 and 1.33 through the real apiserver: the scheduler places the pods, kubia-gpu
// only once node "node" is labelled gpu=true; logs, describe and port-forward reach the pod's
// node through the apiserver, and exec too. A third agent joins by TLS bootstrap with a
// bootstrap token.
func TestNodeModeJoinsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	cluster := controlplane.Start(t, controlplane.Options{})
	startAgentWith(t, nodeConfig(t, cluster, "node"))
	startAgentWith(t, nodeConfig(t, cluster, "node-b"))
	// A third node joins with a bootstrap token: its CSR is approved and signed by the cluster.
	third := testConfig(t, "node-c")
	third.BootstrapKubeconfig = cluster.BootstrapKubeconfig(t, cluster.BootstrapToken(t))
	third.KubeletListen, third.NodeIP, third.ClientCAFile = freeAddr(t), "127.0.0.1", cluster.CACert
	startAgentWith(t, third)
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	admin := cluster.AdminKubeconfig
	for _, v := range kubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			bin := kubectlBinary(t, v)
			runStep(t, bin, admin, 0, step{args: []string{"get", "nodes"}, until: true,
				want: []string{`(?m)^node +Ready +`, `(?m)^node-b +Ready +`, `(?m)^node-c +Ready +`}})
			for i, s := range seedWalkthrough(examples) {
				if strings.Join(s.args, " ") == "get pods" {
					// The last step: a real cluster also has services (`delete all --all`
					// deleted "kubernetes", which the apiserver makes again).
					s.want = []string{`No resources found in default namespace.`}
				}
				if strings.Contains(strings.Join(s.args, " "), "create -f") && slices.Contains(s.args, "custom-namespace") {
					// A new namespace takes pods once its ServiceAccount "default" exists, which
					// kube-controller-manager makes a moment after the namespace.
					s.until = true
				}
				runStep(t, bin, admin, i+1, s)
				if strings.Join(s.args, " ") == "logs kubia-manual -c kubia" {
					checkKubiaPortForward(t, bin, admin)
					runStep(t, bin, admin, i, step{args: []string{"exec", "kubia-manual", "--", "echo", "hello from the pod"},
						want: []string{`^hello from the pod$`}})
				}
			}
			// What the walkthrough leaves, so that the next kubectl starts from the same state.
			runStep(t, bin, admin, 0, step{args: []string{"label", "node", "node", "gpu-"}, want: []string{`^node/node (un)?labeled$`}})
			runStep(t, bin, admin, 0, step{args: []string{"delete", "ns", "custom-namespace2"}, want: []string{`deleted`}})
			runStep(t, bin, admin, 0, step{args: []string{"get", "ns", "custom-namespace2"}, until: true, wantErr: true,
				want: []string{`not found`}})
		})
	}
}
