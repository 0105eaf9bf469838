// Package serve assembles what `podagent serve` runs: the agent, and in standalone mode the
// Kubernetes API it embeds, which the agent reaches as a client like any other (k3s runs its
// kubelet against its embedded control plane the same way). In node mode (a kubeconfig given) the
// agent joins that cluster and nothing of the embedded API starts.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podagent/podagent/agent"
	"github.com/podagent/podagent/agent/server"
	"github.com/podagent/podagent/apiserver"
)

// Node is an agent and, in standalone mode, its control plane.
type Node struct {
	Agent *agent.Agent
	// ControlPlane is the embedded API; nil in node mode.
	ControlPlane *apiserver.ControlPlane
	// Client reaches the API as the agent does.
	Client kubernetes.Interface
	cfg    agent.Config
}

// Start starts the embedded API (standalone mode) or reads the cluster's kubeconfig (node mode),
// then the agent. Nothing runs pods until Run.
func Start(ctx context.Context, cfg agent.Config) (_ *Node, retErr error) {
	n := &Node{cfg: cfg}
	defer func() {
		if retErr != nil {
			n.Close()
		}
	}()
	var restCfg *rest.Config
	var err error
	if cfg.BootstrapKubeconfig != "" {
		if cfg.Kubeconfig == "" {
			cfg.Kubeconfig = filepath.Join(cfg.RootDir, "kubelet.kubeconfig")
		}
		if err := bootstrap(ctx, cfg.BootstrapKubeconfig, cfg.Kubeconfig, filepath.Join(cfg.RootDir, "pki"), cfg.NodeName); err != nil {
			return nil, err
		}
		n.cfg = cfg
	}
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

// Run runs the agent, and the embedded API's controllers or (node mode) the kubelet API, until
// ctx ends.
func (n *Node) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var serveErr error
	if n.ControlPlane != nil {
		wg.Go(func() { n.ControlPlane.RunControllers(ctx) })
	} else {
		wg.Go(func() { serveErr = n.serveKubelet(ctx) })
	}
	err := n.Agent.Run(ctx)
	wg.Wait()
	return errors.Join(err, serveErr)
}

// serveKubelet serves the kubelet API for the cluster's apiserver (logs, exec, port-forward) and
// metrics-server (stats), authenticating and authorizing each request through the cluster as the
// kubelet's webhook modes do, with the kubelet's cache lifetimes.
func (n *Node) serveKubelet(ctx context.Context) error {
	cfg := n.cfg
	err := server.Listen(ctx, server.Options{
		Addr: cfg.KubeletListen, CertDir: cfg.RootDir, ClientCAFile: cfg.ClientCAFile,
		Authenticator: server.BearerToken{Tokens: server.NewTokenReviewAuthenticator(n.Client.AuthenticationV1(), 2*time.Minute)},
		Authorizer:    server.NewSubjectAccessReviewAuthorizer(n.Client.AuthorizationV1(), 5*time.Minute, 30*time.Second),
		Host:          n.Agent.KubeletHost(), NodeName: cfg.NodeName, Metrics: n.Agent.MetricsGatherer(),
	})
	if err != nil {
		slog.Error("kubelet API", "err", err)
	}
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
