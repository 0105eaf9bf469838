package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/runtime"
)

// containerIDPrefix is the runtime prefix of containerIDs, as the kubelet writes them.
const containerIDPrefix = "containerd://"

// statusInput is what a pod's status is computed from.
type statusInput struct {
	pod      *corev1.Pod
	observed observed
	// waiting holds reasons the agent knows that the runtime does not: back-off, image errors.
	waiting map[string]waitState
	hostIP  string
	// imageIDs maps an image reference to the ID status shows for it.
	imageIDs map[string]string
	now      time.Time
}

// podStatus computes a pod's status as the kubelet reports it.
func podStatus(in statusInput) corev1.PodStatus {
	pod, o := in.pod, in.observed
	old := pod.Status
	s := corev1.PodStatus{
		HostIP:   in.hostIP,
		QOSClass: runtime.QOSClass(pod),
		PodIP:    old.PodIP, PodIPs: old.PodIPs,
		StartTime: old.StartTime,
	}
	if in.hostIP != "" {
		s.HostIPs = []corev1.HostIP{{IP: in.hostIP}}
	}
	if s.StartTime == nil {
		s.StartTime = ptr.To(metav1.NewTime(in.now.Truncate(time.Second)))
	}
	if sb := o.sandbox; sb != nil && len(sb.IPs) > 0 {
		s.PodIP, s.PodIPs = sb.IPs[0], nil
		for _, ip := range sb.IPs {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	for i := range pod.Spec.Containers {
		s.ContainerStatuses = append(s.ContainerStatuses, containerStatus(&pod.Spec.Containers[i], o, in))
	}
	s.Phase = podPhase(pod.Spec.RestartPolicy, s.ContainerStatuses)
	var unready []string
	for _, cs := range s.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	sandboxReady := o.sandbox != nil && o.sandbox.Ready()
	s.Conditions = []corev1.PodCondition{
		condition(corev1.PodReadyToStartContainers, sandboxReady, "", ""),
		condition(corev1.PodInitialized, true, "", ""),
		readyCondition(corev1.PodReady, s.Phase, unready),
		readyCondition(corev1.ContainersReady, s.Phase, unready),
		condition(corev1.PodScheduled, true, "", ""),
	}
	keepTransitionTimes(s.Conditions, old.Conditions, in.now)
	return s
}

func condition(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
	st := corev1.ConditionFalse
	if ok {
		st = corev1.ConditionTrue
	}
	return corev1.PodCondition{Type: t, Status: st, Reason: reason, Message: msg}
}

// readyCondition is Ready or ContainersReady: true when every container is ready, with the
// kubelet's reasons when not.
func readyCondition(t corev1.PodConditionType, phase corev1.PodPhase, unready []string) corev1.PodCondition {
	switch {
	case phase == corev1.PodSucceeded:
		return condition(t, false, "PodCompleted", "")
	case phase == corev1.PodFailed:
		return condition(t, false, "PodFailed", "")
	case len(unready) > 0:
		return condition(t, false, "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " ")))
	}
	return condition(t, true, "", "")
}

// keepTransitionTimes carries lastTransitionTime over from the old conditions where the status did
// not change, and stamps now where it did.
func keepTransitionTimes(conds, old []corev1.PodCondition, now time.Time) {
	t := metav1.NewTime(now.Truncate(time.Second))
	for i := range conds {
		conds[i].LastTransitionTime = t
		j := slices.IndexFunc(old, func(c corev1.PodCondition) bool { return c.Type == conds[i].Type })
		if j >= 0 && old[j].Status == conds[i].Status {
			conds[i].LastTransitionTime = old[j].LastTransitionTime
			conds[i].LastProbeTime = old[j].LastProbeTime
		}
	}
}

func containerStatus(c *corev1.Container, o observed, in statusInput) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: ptr.To(false)}
	if ref, err := runtime.NormalizeImage(c.Image); err == nil {
		cs.Image = ref
	}
	cur := o.latest(c.Name)
	if cur == nil {
		cs.State.Waiting = waitingOr(in.waiting[c.Name], "ContainerCreating")
		return cs
	}
	cs.ContainerID = containerIDPrefix + cur.ID
	cs.RestartCount = int32(cur.RestartCount)
	if cur.Image != "" {
		cs.Image = cur.Image
	}
	cs.ImageID = in.imageIDs[cs.Image]
	if prev := o.previous(c.Name); prev != nil {
		cs.LastTerminationState.Terminated = terminated(prev)
	}
	switch cur.State {
	case runtime.ContainerRunning:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(cur.StartedAt)}
		cs.Ready, cs.Started = true, ptr.To(true)
	case runtime.ContainerCreated:
		cs.State.Waiting = waitingOr(in.waiting[c.Name], "ContainerCreating")
	case runtime.ContainerExited:
		if w, ok := in.waiting[c.Name]; ok {
			// Waiting to run again: the instance that ended is the last state.
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: w.reason, Message: w.message}
			cs.LastTerminationState.Terminated = terminated(cur)
		} else {
			cs.State.Terminated = terminated(cur)
		}
	}
	return cs
}

func waitingOr(w waitState, reason string) *corev1.ContainerStateWaiting {
	if w.reason != "" {
		return &corev1.ContainerStateWaiting{Reason: w.reason, Message: w.message}
	}
	return &corev1.ContainerStateWaiting{Reason: reason}
}

// terminated is an exited instance's state, with the kubelet's reasons: Completed for exit 0,
// Error otherwise, unless the runtime recorded its own (StartError).
func terminated(c *runtime.Container) *corev1.ContainerStateTerminated {
	t := &corev1.ContainerStateTerminated{
		ExitCode: int32(c.ExitCode), Reason: c.Reason, Message: c.Message,
		FinishedAt: metav1.NewTime(c.FinishedAt), ContainerID: containerIDPrefix + c.ID,
	}
	if !c.StartedAt.IsZero() {
		t.StartedAt = metav1.NewTime(c.StartedAt)
	}
	if t.Reason == "" {
		t.Reason = "Error"
		if c.ExitCode == 0 {
			t.Reason = "Completed"
		}
	}
	return t
}

// podPhase is the kubelet's getPhase for a pod without init containers.
func podPhase(policy corev1.RestartPolicy, statuses []corev1.ContainerStatus) corev1.PodPhase {
	var running, waiting, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch {
		case policy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case policy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}
