package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/podagent/podagent/apiserver/validation"
	"github.com/podagent/podagent/logs"
)

// InvalidPodError is a pod that cannot run as specified; Errs name the offending fields.
type InvalidPodError struct {
	Pod  PodRef
	Errs field.ErrorList
}

func (e *InvalidPodError) Error() string {
	return fmt.Sprintf("pod %s is invalid: %v", e.Pod, e.Errs.ToAggregate())
}

// RunningPod is a pod's sandbox and containers.
type RunningPod struct {
	Sandbox    *Sandbox
	Containers []*Container
}

// RunPod validates pod, makes its sandbox and starts every container. Nothing starts unless the
// whole pod is valid, and a failure at any step removes everything the pod had, with an error
// naming the container and the reason.
func (r *Runtime) RunPod(ctx context.Context, pod *corev1.Pod) (_ *RunningPod, retErr error) {
	ref := PodRef{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	if errs := validation.Pod(pod); len(errs) > 0 {
		return nil, &InvalidPodError{Pod: ref, Errs: errs}
	}
	if ref.UID == "" {
		return nil, &InvalidPodError{Pod: ref, Errs: field.ErrorList{field.Required(field.NewPath("metadata", "uid"), "")}}
	}
	var undo undoStack
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, undo.run(ctx))
		}
	}()
	sb, err := r.RunSandbox(ctx, pod)
	if err != nil {
		return nil, err
	}
	undo.push(func(ctx context.Context) error { return r.RemovePod(ctx, ref, 0) })
	rp := &RunningPod{Sandbox: sb}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		ctr, err := r.CreateContainer(ctx, sb, pod, c, ContainerOptions{SpecHash: ContainerHash(c)})
		if err != nil {
			return nil, err
		}
		if err := r.StartContainer(ctx, ctr); err != nil {
			return nil, err
		}
		rp.Containers = append(rp.Containers, ctr)
	}
	return rp, nil
}

// UsePodGracePeriod asks RemovePod to give each container the pod's own
// terminationGracePeriodSeconds, as recorded when the container was made.
const UsePodGracePeriod time.Duration = -1

// RemovePod stops every container of the pod (SIGTERM, then SIGKILL after grace), then removes
// them, its sandboxes, its files and its logs. It is idempotent, and works from containerd's state
// alone, so it also cleans up after a crash.
func (r *Runtime) RemovePod(ctx context.Context, pod PodRef, grace time.Duration) error {
	ctrs, err := r.ListContainers(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ctrs))
	for i, c := range ctrs {
		if c.Pod.UID != pod.UID {
			continue
		}
		// Containers stop in parallel: each may take its whole grace period.
		g := grace
		if g == UsePodGracePeriod {
			g = c.GracePeriod
		}
		wg.Go(func() {
			if err := r.StopContainer(ctx, c.ID, g); err != nil {
				errs[i] = fmt.Errorf("stop container %q of pod %s: %w", c.Name, pod, err)
				return
			}
			errs[i] = r.RemoveContainer(ctx, c.ID)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	sbs, err := r.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	for _, sb := range sbs {
		if sb.Pod.UID == pod.UID {
			if err := r.RemoveSandbox(ctx, sb.ID); err != nil {
				return err
			}
		}
	}
	if err := r.removePodFiles(pod.UID); err != nil {
		return err
	}
	if pod.Namespace != "" && pod.Name != "" {
		if err := os.RemoveAll(logs.PodDir(r.cfg.LogDir, pod.Namespace, pod.Name, pod.UID)); err != nil {
			return fmt.Errorf("remove logs of pod %s: %w", pod, err)
		}
	}
	return nil
}

// ContainerHash identifies a container spec: a container whose hash changed must be restarted.
func ContainerHash(c *corev1.Container) string {
	raw, _ := json.Marshal(c) // a Container always marshals
	h := fnv.New64a()
	h.Write(raw)
	return strconv.FormatUint(h.Sum64(), 16)
}

// SandboxHash identifies what a pod's sandbox is made from: the pod-level spec without the
// containers and without the fields that only the agent reads (restart policy, grace period,
// scheduling). A pod whose SandboxHash changed needs a new sandbox, and so new containers.
func SandboxHash(pod *corev1.Pod) string {
	s := pod.Spec.DeepCopy()
	s.Containers, s.InitContainers, s.EphemeralContainers = nil, nil, nil
	s.RestartPolicy, s.TerminationGracePeriodSeconds, s.ActiveDeadlineSeconds = "", nil, nil
	s.NodeName, s.NodeSelector, s.Tolerations, s.Affinity, s.SchedulerName = "", nil, nil, nil, ""
	s.Priority, s.PriorityClassName, s.PreemptionPolicy = nil, "", nil
	raw, _ := json.Marshal(s) // a PodSpec always marshals
	h := fnv.New64a()
	h.Write(raw)
	// hostPorts are the sandbox's (CNI maps them when it is made), though they are written in the
	// containers: a changed one needs a new sandbox. Pods without any hash as they always did, so
	// that an upgraded agent rebuilds no sandbox.
	if pm := podNetwork(pod).PortMappings; len(pm) > 0 {
		raw, _ := json.Marshal(pm)
		h.Write(raw)
	}
	return strconv.FormatUint(h.Sum64(), 16)
}
