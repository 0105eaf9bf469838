package agent

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podagent/podagent/runtime"
)

// Runtime is the agent's container runtime.
func (a *Agent) Runtime() *runtime.Runtime { return a.rt }

// Exec runs a command in one of the agent's containers and returns its exit code.
func (a *Agent) Exec(ctx context.Context, containerID string, o runtime.ExecOptions) (int, error) {
	return a.rt.Exec(a.ContainerdContext(ctx), containerID, o)
}

// apiPod is the pod namespace/name as the API shows it to the node (a static pod's mirror shows
// it with the static pod's UID, which its containers carry), or the API's NotFound.
func (a *Agent) apiPod(namespace, name string) (*corev1.Pod, error) {
	p := a.pods.get(namespace, name)
	if p == nil {
		return nil, apierrors.NewNotFound(podsResource, name)
	}
	if isMirror(p) {
		sp := a.static.byName(namespace, name)
		if sp == nil {
			return nil, apierrors.NewNotFound(podsResource, name)
		}
		sp.Status = p.Status
		return sp, nil
	}
	return p, nil
}

// ContainerdContext is ctx in the agent's containerd namespace: what runtime calls from outside
// the agent's loops (the API's requests) need.
func (a *Agent) ContainerdContext(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, a.cfg.ContainerdNamespace)
}

// runningPod is the stored pod, refused as the apiserver refuses exec and port-forward into a pod
// that does not run.
func (a *Agent) runningPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod, err := a.apiPod(namespace, name)
	if err != nil {
		return nil, err
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot exec into or port-forward to a container in a completed pod; current phase is %s", pod.Status.Phase))
	}
	return pod, nil
}

// ExecTarget is the ID of the running instance of a pod's container, the one `kubectl exec`
// reaches; container "" means the pod's only (or default) container.
func (a *Agent) ExecTarget(ctx context.Context, namespace, name, container string) (string, error) {
	pod, err := a.runningPod(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	if container == "" {
		container = pod.Annotations["kubectl.kubernetes.io/default-container"]
	}
	if container == "" && len(pod.Spec.Containers) > 0 {
		container = pod.Spec.Containers[0].Name
	}
	if _, err := logContainer(pod, container); err != nil {
		return "", err
	}
	ctrs, err := a.rt.PodContainers(a.ContainerdContext(ctx), string(pod.UID))
	if err != nil {
		return "", err
	}
	c := observe(nil, ctrs).latest(container)
	if c == nil || c.State != runtime.ContainerRunning {
		return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s: it is not running", container, name))
	}
	return c.ID, nil
}

// PodNetNS is the network namespace of a running pod, where port-forward dials.
func (a *Agent) PodNetNS(ctx context.Context, namespace, name string) (string, error) {
	pod, err := a.runningPod(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	sbs, err := a.rt.PodSandboxes(a.ContainerdContext(ctx), string(pod.UID))
	if err != nil {
		return "", err
	}
	o := observe(sbs, nil)
	if o.sandbox == nil || !o.sandbox.Ready() {
		return "", apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a running sandbox", name))
	}
	return o.sandbox.NetNSPath, nil
}
