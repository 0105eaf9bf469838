package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// nodeStatusReportFrequency is how often the node's conditions are reported again when nothing
// changed: the kubelet's nodeStatusReportFrequency default, 5m. It is the heartbeat that
// `kubectl describe node` shows under Conditions.
const nodeStatusReportFrequency = 5 * time.Minute

// heartbeat reports the node's status every nodeStatusReportFrequency until ctx ends.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(nodeStatusReportFrequency)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if err := a.reportNodeStatus(ctx, now); err != nil && ctx.Err() == nil {
				slog.Warn("report node status", "node", a.cfg.NodeName, "err", err)
			}
		}
	}
}

// reportNodeStatus sets the heartbeat time of every node condition to now; what the conditions
// say, and since when, stays.
func (a *Agent) reportNodeStatus(ctx context.Context, now time.Time) error {
	t := metav1.NewTime(now.Truncate(time.Second))
	nodes := a.client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i := range n.Status.Conditions {
			n.Status.Conditions[i].LastHeartbeatTime = t
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("report status of node %s: %w", a.cfg.NodeName, err)
	}
	return nil
}

// keepNodeTransitionTimes gives each condition of next whose status is the same in prev the
// transition time it had in prev: a restarted agent reports the node as Ready since it first was.
func keepNodeTransitionTimes(prev, next []corev1.NodeCondition) {
	for i := range next {
		for _, p := range prev {
			if p.Type == next[i].Type && p.Status == next[i].Status && !p.LastTransitionTime.IsZero() {
				next[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
}
