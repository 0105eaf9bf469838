package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/podagent/podagent/netns"
)

// CollectNetworks tears down the network namespaces and IP reservations whose sandbox container
// no longer exists. RemoveSandbox and the undo of RunSandbox normally leave none, but a CNI plugin
// outlives an agent killed while it runs: it may finish its ADD after the restarted agent removed
// the sandbox, leaving an IP that nothing would ever release.
//
// The network state is listed before the containers: a sandbox's container is created before its
// namespace and deleted after it, so an ID seen in the network state and then missing from
// containerd belongs to no sandbox, now or later.
func (r *Runtime) CollectNetworks(ctx context.Context) error {
	ids, err := r.net.Sandboxes()
	if err != nil {
		return err
	}
	res, err := r.net.Reservations()
	if err != nil {
		return err
	}
	for _, owner := range res {
		ids = append(ids, owner)
	}
	if len(ids) == 0 {
		return nil
	}
	ctrs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q==%s", LabelKind, KindSandbox))
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	known := make(map[string]bool, len(ctrs))
	for _, c := range ctrs {
		known[c.ID()] = true
	}
	var errs []error
	done := map[string]bool{}
	for _, id := range ids {
		if known[id] || done[id] || id == "" {
			continue
		}
		done[id] = true
		slog.Info("releasing the network of a removed sandbox", "sandbox", id)
		// The pod's identity is gone with its container; DEL needs only the sandbox ID to release
		// the IP (host-local) and the rules (portmap) it holds.
		if err := r.net.Teardown(ctx, id, netns.Pod{}); err != nil {
			errs = append(errs, fmt.Errorf("release network of removed sandbox %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
