package agent_test

import (
	"path/filepath"
	"regexp"
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
// bootstrap token. A node whose agent stops goes NotReady and comes back Ready with its pod
// untouched; cordon and drain work; a pod asking for what podagent does not implement fails.
func TestNodeModeJoinsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	// The node lifecycle controller notices a silent node within 10 s, not the default 50.
	cluster := controlplane.Start(t, controlplane.Options{ControllerManagerArgs: []string{"--node-monitor-grace-period=10s", "--node-monitor-period=2s"}})
	startAgentWith(t, nodeConfig(t, cluster, "node"))
	nodeB := startAgentWith(t, nodeConfig(t, cluster, "node-b"))
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

	// A node goes NotReady when its agent stops and Ready when it comes back; its pods keep
	// running meanwhile, and nothing is restarted.
	bin := kubectlBinary(t, kubectlVersions[len(kubectlVersions)-1])
	pinned := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"pinned"},"spec":{"nodeSelector":{"kubernetes.io/hostname":"node-b"},` +
		`"terminationGracePeriodSeconds":1,"containers":[{"name":"main","image":"busybox","command":["sleep","3600"]}]}}`
	runStep(t, bin, admin, 0, step{args: []string{"run", "pinned", "--image=busybox", "--overrides=" + pinned}, want: []string{`created`}})
	runStep(t, bin, admin, 0, step{args: []string{"get", "pod", "pinned", "-o", "wide"}, until: true, want: []string{`(?m)^pinned +1/1 +Running +0 +.* node-b `}})
	before, _, _ := kubectlRun(t, bin, admin, nil, "get", "pod", "pinned", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
	nodeB.stop()
	runStep(t, bin, admin, 0, step{args: []string{"get", "node", "node-b"}, until: true, want: []string{`(?m)^node-b +NotReady +`}})
	nodeB.start(t)
	runStep(t, bin, admin, 0, step{args: []string{"get", "node", "node-b"}, until: true, want: []string{`(?m)^node-b +Ready +`}})
	runStep(t, bin, admin, 0, step{args: []string{"get", "pod", "pinned", "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}"},
		until: true, want: []string{"^" + regexp.QuoteMeta(before) + " 0$"}})

	// Cordon and drain: the node takes no new pods, and its pods are evicted (deleted gracefully,
	// which the agent carries out).
	runStep(t, bin, admin, 0, step{args: []string{"cordon", "node-b"}, want: []string{`^node/node-b cordoned$`}})
	runStep(t, bin, admin, 0, step{args: []string{"get", "node", "node-b"}, want: []string{`(?m)^node-b +Ready,SchedulingDisabled +`}})
	runStep(t, bin, admin, 0, step{args: []string{"drain", "node-b", "--force", "--ignore-daemonsets", "--timeout=60s"},
		want: []string{`pod/pinned evicted`, `node/node-b drained`}})
	runStep(t, bin, admin, 0, step{args: []string{"get", "pod", "pinned"}, until: true, wantErr: true, want: []string{`not found`}})
	runStep(t, bin, admin, 0, step{args: []string{"uncordon", "node-b"}, want: []string{`^node/node-b uncordoned$`}})

	// A pod with a field the node does not implement fails with the reason, as the kubelet's
	// admission fails it, rather than running without it.
	probed := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"probed"},"spec":{"containers":[{"name":"main","image":"busybox",` +
		`"command":["sleep","3600"],"livenessProbe":{"exec":{"command":["true"]}}}]}}`
	runStep(t, bin, admin, 0, step{args: []string{"run", "probed", "--image=busybox", "--overrides=" + probed}, want: []string{`created`}})
	runStep(t, bin, admin, 0, step{args: []string{"get", "pod", "probed", "-o", "jsonpath={.status.phase} {.status.reason} {.status.message}"},
		until: true, want: []string{`^Failed UnsupportedPodSpec Pod was rejected: .*livenessProbe`}})
}
