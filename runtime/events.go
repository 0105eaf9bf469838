package runtime

import (
	"context"
	"fmt"
	"log/slog"

	_ "github.com/containerd/containerd/api/events" // registers the task event types for decoding
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"
)

// ReasonOOMKilled is the reason of a container the kernel killed for running out of memory.
const ReasonOOMKilled = "OOMKilled"

// TaskEvents calls changed with the pod of every container or sandbox whose task starts, exits,
// is deleted or is OOM-killed, so the agent reacts at once rather than at its next resync. An OOM
// kill is recorded on the container, so its status says OOMKilled. It returns when ctx ends or the
// subscription fails (containerd restarted); the caller resubscribes.
func (r *Runtime) TaskEvents(ctx context.Context, changed func(PodRef)) error {
	ns, _ := namespaces.Namespace(ctx)
	envs, errs := r.client.Subscribe(ctx, fmt.Sprintf(`namespace==%q,topic~="^/tasks/"`, ns))
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return fmt.Errorf("containerd events: %w", err)
		case env := <-envs:
			ev, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue // an event type this build does not know
			}
			withID, ok := ev.(interface{ GetContainerID() string })
			if !ok {
				continue
			}
			id := withID.GetContainerID()
			c, err := r.client.LoadContainer(ctx, id)
			if err != nil {
				continue // gone already; the resync covers it
			}
			labels, err := c.Labels(ctx)
			if err != nil {
				continue
			}
			if env.Topic == "/tasks/oom" && labels[LabelKind] == KindContainer {
				if _, err := c.SetLabels(ctx, map[string]string{LabelExitReason: ReasonOOMKilled}); err != nil {
					slog.Warn("record OOM kill", "container", id, "err", err)
				}
			}
			changed(podRefFromLabels(labels))
		}
	}
}
