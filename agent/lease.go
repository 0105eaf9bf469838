package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The node's Lease, as the kubelet's: renewed every 10 s (a quarter of the 40 s duration), in
// kube-node-lease, named for the node and owned by its Node.
const (
	leaseDuration      = 40 * time.Second
	leaseRenewInterval = 10 * time.Second
	leaseNamespace     = corev1.NamespaceNodeLease
)

// renewLease renews the node's Lease every leaseRenewInterval until ctx ends: the heartbeat that
// tells the control plane the node is alive.
func (a *Agent) renewLease(ctx context.Context) {
	t := time.NewTicker(leaseRenewInterval)
	defer t.Stop()
	for {
		if err := a.renewLeaseOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			slog.Warn("renew node lease", "node", a.cfg.NodeName, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) renewLeaseOnce(ctx context.Context, now time.Time) error {
	leases := a.client.CoordinationV1().Leases(leaseNamespace)
	renew := metav1.NewMicroTime(now)
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Namespace: leaseNamespace,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.cfg.NodeName, UID: a.nodeUID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(a.cfg.NodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)), RenewTime: &renew},
		}
		if _, err := leases.Create(ctx, l, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create lease %s/%s: %w", leaseNamespace, a.cfg.NodeName, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read lease %s/%s: %w", leaseNamespace, a.cfg.NodeName, err)
	}
	l.Spec.RenewTime = &renew
	l.Spec.HolderIdentity = ptr.To(a.cfg.NodeName)
	l.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration / time.Second))
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("renew lease %s/%s: %w", leaseNamespace, a.cfg.NodeName, err)
	}
	return nil
}
