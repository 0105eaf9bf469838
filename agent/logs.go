package agent

import (
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podagent/podagent/logs"
	"github.com/podagent/podagent/runtime"
)

// ContainerLog finds the log of a container as the kubelet serves it (the current instance's, or
// with Previous the last terminated one's) and returns what writes it to out. Errors are the
// apiserver's and kubelet's, as Kubernetes status errors (NotFound, BadRequest) with their
// messages, returned before anything is written.
func (a *Agent) ContainerLog(ctx context.Context, namespace, name string, opts logs.PodLogOptions) (func(out io.Writer) error, error) {
	pod, err := a.apiPod(namespace, name)
	if err != nil {
		return nil, err
	}
	container, err := logContainer(pod, opts.Container)
	if err != nil {
		return nil, err
	}
	ctx = a.ContainerdContext(ctx)
	ctrs, err := a.rt.PodContainers(ctx, string(pod.UID))
	if err != nil {
		return nil, err
	}
	o := observe(nil, ctrs)
	inst := o.latest(container)
	if opts.Previous {
		inst = o.previous(container)
		if inst == nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, name))
		}
	}
	if inst == nil || inst.StartedAt.IsZero() {
		reason := "ContainerCreating"
		if cs := findContainerStatus(pod, container); cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
			reason = cs.State.Waiting.Reason
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, name, reason))
	}
	path := logs.Path(a.cfg.LogDir, pod.Namespace, pod.Name, string(pod.UID), container, inst.RestartCount)
	ro := opts.ReadOptions
	if !opts.Previous && inst.State == runtime.ContainerRunning {
		id := inst.ID
		ro.Running = func() bool { return a.rt.ContainerRunning(ctx, id) }
	} else {
		ro.Running = nil
	}
	return func(out io.Writer) error {
		if err := logs.Read(ctx, path, ro, out); err != nil && ctx.Err() == nil {
			return fmt.Errorf("read log of container %q of pod %s/%s: %w", container, namespace, name, err)
		}
		return nil
	}, nil
}

// logContainer is the container whose log is asked for: the named one, or the only one.
func logContainer(pod *corev1.Pod, name string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if name == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: [%s]",
			pod.Name, strings.Join(names, " ")))
	}
	for _, n := range names {
		if n == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

func findContainerStatus(pod *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == name {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}
