package apiserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/apiserver/store"
)

// ControlPlane is the Kubernetes API that podagent embeds for standalone use: the store, the
// registry's rules, the API served over HTTPS and the few controllers a one-host cluster needs.
// The agent reaches it only as a client, with the credentials NodeConfig gives, as a kubelet
// reaches a kube-apiserver.
type ControlPlane struct {
	store    *store.Store
	registry *registry.Registry
	server   *Server
	listener *Listener
}

// ControlPlaneOptions say where the embedded API keeps its state and where it listens.
type ControlPlaneOptions struct {
	Options
	// StateFile is the bbolt file of the objects (<root-dir>/state.db).
	StateFile string
}

// StartControlPlane opens the store, creates the default namespaces and serves the API. Call
// RunControllers to run its controllers, and Close at the end.
func StartControlPlane(ctx context.Context, o ControlPlaneOptions) (_ *ControlPlane, retErr error) {
	if err := os.MkdirAll(filepath.Dir(o.StateFile), 0o755); err != nil {
		return nil, fmt.Errorf("create directory of %s: %w", o.StateFile, err)
	}
	st, err := store.Open(o.StateFile)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			st.Close()
		}
	}()
	reg := registry.New(st)
	if err := reg.EnsureDefaultNamespaces(ctx); err != nil {
		return nil, err
	}
	s, err := New(st, reg)
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{store: st, registry: reg, server: s}
	if o.Listen != "" {
		if cp.listener, err = Listen(s, o.Options); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// Store is the embedded API's object store, for tests that look beneath the API.
func (cp *ControlPlane) Store() *store.Store { return cp.store }

// Registry applies the embedded API's rules to writes, for tests that act beneath the API.
func (cp *ControlPlane) Registry() *registry.Registry { return cp.registry }

// Server is the embedded API's HTTP handler.
func (cp *ControlPlane) Server() *Server { return cp.server }

// Listener is where the API is served; nil when it listens nowhere.
func (cp *ControlPlane) Listener() *Listener { return cp.listener }

// SetKubelet hands the API its node's kubelet half (logs, exec, port-forward, metrics).
func (cp *ControlPlane) SetKubelet(k Kubelet) { cp.server.SetKubelet(k) }

// NodeConfig is the client configuration of node: the API's address and CA, and a client
// certificate for system:node:NAME in system:nodes, issued now.
func (cp *ControlPlane) NodeConfig(node string) (*rest.Config, error) {
	l := cp.listener
	if l == nil {
		return nil, errors.New("the embedded API listens nowhere: no client can reach it")
	}
	certPEM, keyPEM, err := l.PKI.ClientCertificate("system:node:"+node, []string{NodesGroup}, time.Now())
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            l.Server,
		TLSClientConfig: rest.TLSClientConfig{CAData: l.PKI.CAPEM, CertData: certPEM, KeyData: keyPEM},
		UserAgent:       "podagent/" + node,
		// The agent is the API's only heavy client, in the same process: the client-side
		// limits meant to spare a shared apiserver would only slow its status writes.
		QPS: 1000, Burst: 2000,
	}, nil
}

// Close stops serving and closes the store. Call it after RunControllers has returned.
func (cp *ControlPlane) Close() error {
	var err error
	if cp.listener != nil {
		err = cp.listener.Close()
	}
	return errors.Join(err, cp.store.Close())
}
