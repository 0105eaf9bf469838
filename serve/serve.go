// Package serve assembles what `podagent serve` runs: the agent, and in standalone mode the
// Kubernetes API it embeds, which the agent reaches as a client like any other (k3s runs its
// kubelet against its embedded control plane the same way). In node mode (a kubeconfig given) the
// agent joins that cluster and nothing of the embedded API starts.
package serve

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/apiserver"
)

// Node is an agent and, in standalone mode, its control plane.
type Node struct {
	Agent *agent.Agent
	// ControlPlane is the embedded API; nil in node mode.
	ControlPlane *apiserver.ControlPlane
	// Client reaches the API as the agent does.
	Client kubernetes.Interface
}

// Start starts the embedded API (standalone mode) or reads the cluster's kubeconfig (node mode),
// then the agent. Nothing runs pods until Run.
func Start(ctx context.Context, cfg agent.Config) (_ *Node, retErr error) {
	n := &Node{}
	defer func() {
		if retErr != nil {
			n.Close()
		}
	}()
	var restCfg *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		if restCfg, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		restCfg.UserAgent = "podagent/" + cfg.NodeName
	} else {
		if cfg.Listen == "" {
			return nil, errors.New("standalone mode serves the Kubernetes API the agent uses: --listen must be an address (or --kubeconfig given for node mode)")
		}
		n.ControlPlane, err = apiserver.StartControlPlane(ctx, apiserver.ControlPlaneOptions{
			Options: apiserver.Options{
				Listen: cfg.Listen, PKIDir: apiserver.PKIDir(cfg.RootDir), Kubeconfig: apiserver.KubeconfigPath(cfg.RootDir),
				Hosts: []string{cfg.NodeName},
			},
			StateFile: filepath.Join(cfg.RootDir, "state.db"),
		})
		if err != nil {
			return nil, err
		}
		if restCfg, err = n.ControlPlane.NodeConfig(cfg.NodeName); err != nil {
			return nil, err
		}
	}
	if n.Client, err = kubernetes.NewForConfig(restCfg); err != nil {
		return nil, fmt.Errorf("client of the Kubernetes API: %w", err)
	}
	if n.Agent, err = agent.New(ctx, cfg, n.Client); err != nil {
		return nil, err
	}
	if n.ControlPlane != nil {
		n.ControlPlane.SetKubelet(n.Agent)
	}
	return n, nil
}

// Run runs the agent, and the embedded API's controllers, until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if n.ControlPlane != nil {
		wg.Go(func() { n.ControlPlane.RunControllers(ctx) })
	}
	err := n.Agent.Run(ctx)
	wg.Wait()
	return err
}

// Close releases what Start took. Call it after Run has returned.
func (n *Node) Close() error {
	var errs []error
	if n.Agent != nil {
		errs = append(errs, n.Agent.Close())
	}
	if n.ControlPlane != nil {
		errs = append(errs, n.ControlPlane.Close())
	}
	return errors.Join(errs...)
}
