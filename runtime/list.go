package runtime

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// ListSandboxes returns every sandbox in the runtime's containerd namespace, found by label, with
// whether its pause process runs.
func (r *Runtime) ListSandboxes(ctx context.Context) ([]*Sandbox, error) {
	return r.listSandboxes(ctx, fmt.Sprintf("labels.%q==%s", LabelKind, KindSandbox))
}

// PodSandboxes returns the sandboxes of the pod with the given UID.
func (r *Runtime) PodSandboxes(ctx context.Context, uid string) ([]*Sandbox, error) {
	return r.listSandboxes(ctx, fmt.Sprintf("labels.%q==%s,labels.%q==%q", LabelKind, KindSandbox, LabelPodUID, uid))
}

func (r *Runtime) listSandboxes(ctx context.Context, filter string) ([]*Sandbox, error) {
	ctrs, err := r.client.Containers(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	out := make([]*Sandbox, 0, len(ctrs))
	for _, c := range ctrs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("inspect sandbox %s: %w", c.ID(), err)
		}
		sb := &Sandbox{
			ID: c.ID(), Pod: podRefFromLabels(info.Labels), NetNSPath: r.net.Path(c.ID()), CreatedAt: info.CreatedAt,
			SpecHash: info.Labels[LabelSandboxHash],
		}
		if ips := info.Labels[LabelPodIP]; ips != "" {
			sb.IPs = strings.Split(ips, ",")
		}
		// Only a task that is gone or stopped means a dead sandbox; any other error is returned,
		// so that a containerd hiccup never looks like a pod to tear down.
		task, err := c.Task(ctx, nil)
		switch {
		case errdefs.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("load pause task of sandbox %s: %w", c.ID(), err)
		default:
			st, err := task.Status(ctx)
			if err != nil && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("status of sandbox %s: %w", c.ID(), err)
			}
			if err == nil && st.Status == containerd.Running {
				sb.PID = task.Pid()
			}
		}
		out = append(out, sb)
	}
	return out, nil
}

// ListContainers returns every app container in the runtime's containerd namespace, with its
// state read from its task (or, once the task is gone, from the labels that recorded its exit).
func (r *Runtime) ListContainers(ctx context.Context) ([]*Container, error) {
	return r.listContainers(ctx, fmt.Sprintf("labels.%q==%s", LabelKind, KindContainer))
}

// PodContainers returns the app containers of the pod with the given UID, every instance of each.
func (r *Runtime) PodContainers(ctx context.Context, uid string) ([]*Container, error) {
	return r.listContainers(ctx, fmt.Sprintf("labels.%q==%s,labels.%q==%q", LabelKind, KindContainer, LabelPodUID, uid))
}

func (r *Runtime) listContainers(ctx context.Context, filter string) ([]*Container, error) {
	ctrs, err := r.client.Containers(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]*Container, 0, len(ctrs))
	for _, c := range ctrs {
		ctr, err := r.containerStatus(ctx, c)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ctr)
	}
	return out, nil
}

func (r *Runtime) containerStatus(ctx context.Context, c containerd.Container) (*Container, error) {
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", c.ID(), err)
	}
	l := info.Labels
	rc, err := restartCountFromLabels(l)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID(), err)
	}
	ctr := &Container{
		ID: c.ID(), Name: l[LabelContainerName], Pod: podRefFromLabels(l), SandboxID: l[LabelSandboxID],
		RestartCount: rc, SpecHash: l[LabelSpecHash], Image: info.Image, State: ContainerCreated,
		CreatedAt: info.CreatedAt,
	}
	ctr.StartedAt, _ = time.Parse(time.RFC3339Nano, l[LabelStartedAt])
	ctr.GracePeriod = DefaultGracePeriod
	if g, err := strconv.ParseInt(l[LabelGracePeriod], 10, 64); err == nil && g >= 0 {
		ctr.GracePeriod = time.Duration(g) * time.Second
	}
	if b, err := time.ParseDuration(l[LabelBackOff]); err == nil {
		ctr.BackOff = b
	}
	if code, ok := l[LabelExitCode]; ok {
		ctr.State = ContainerExited
		ctr.ExitCode, _ = strconv.Atoi(code)
		ctr.Reason, ctr.Message = l[LabelExitReason], l[LabelExitMessage]
		ctr.FinishedAt, _ = time.Parse(time.RFC3339Nano, l[LabelFinishedAt])
		return ctr, nil
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		if !ctr.StartedAt.IsZero() {
			// Started, but the task vanished without a recorded exit (containerd restarted, or
			// the host rebooted): it is not running, and how it ended is unknown.
			ctr.State, ctr.ExitCode = ContainerExited, 255
		}
		return ctr, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load task of container %s: %w", c.ID(), err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status of container %s: %w", c.ID(), err)
	}
	switch st.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		ctr.State, ctr.PID = ContainerRunning, task.Pid()
		if ctr.StartedAt.IsZero() {
			// The labels were read (listed) before the task started: its start time, recorded
			// before the start, is there now.
			if info, err := c.Info(ctx); err == nil {
				ctr.StartedAt, _ = time.Parse(time.RFC3339Nano, info.Labels[LabelStartedAt])
			}
		}
	case containerd.Stopped:
		ctr.State, ctr.ExitCode, ctr.FinishedAt = ContainerExited, int(st.ExitStatus), st.ExitTime
		ctr.Reason, ctr.Message = l[LabelExitReason], l[LabelExitMessage]
		// Its task (and shim) still exist: whoever syncs the pod should reap it.
		ctr.Unreaped = true
	case containerd.Created:
		// A start that did not finish; StartContainer replaces the task.
	default:
		return nil, fmt.Errorf("container %s: task status %q", c.ID(), st.Status)
	}
	return ctr, nil
}

// ContainerRunning reports whether the container's process runs now.
func (r *Runtime) ContainerRunning(ctx context.Context, id string) bool {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return false
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return false
	}
	st, err := task.Status(ctx)
	return err == nil && (st.Status == containerd.Running || st.Status == containerd.Paused)
}
