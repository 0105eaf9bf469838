package agent

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/runtime"
)

// Restart back-off, as the kubelet's: 10 s after the first failure, doubling up to 5 min, and back
// to the start for a container that had run for 10 min.
const (
	initialBackOff = 10 * time.Second
	maxBackOff     = 5 * time.Minute
	backOffReset   = 2 * maxBackOff
)

// observed is what the runtime runs for one pod.
type observed struct {
	// sandbox is the pod's newest sandbox, nil if it has none.
	sandbox *runtime.Sandbox
	// stale are its other sandboxes, which should not exist.
	stale []*runtime.Sandbox
	// instances holds every instance of each container by name, newest first.
	instances map[string][]*runtime.Container
}

func observe(sbs []*runtime.Sandbox, ctrs []*runtime.Container) observed {
	o := observed{instances: map[string][]*runtime.Container{}}
	slices.SortFunc(sbs, func(a, b *runtime.Sandbox) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(sbs) > 0 {
		o.sandbox, o.stale = sbs[0], sbs[1:]
	}
	for _, c := range ctrs {
		o.instances[c.Name] = append(o.instances[c.Name], c)
	}
	for _, list := range o.instances {
		slices.SortFunc(list, func(a, b *runtime.Container) int {
			return cmp.Or(cmp.Compare(b.RestartCount, a.RestartCount), b.CreatedAt.Compare(a.CreatedAt))
		})
	}
	return o
}

// latest is the newest instance of the named container, or nil.
func (o observed) latest(name string) *runtime.Container {
	if l := o.instances[name]; len(l) > 0 {
		return l[0]
	}
	return nil
}

// previous is the newest exited instance older than the latest: what `logs --previous` and
// lastState show.
func (o observed) previous(name string) *runtime.Container {
	l := o.instances[name]
	for _, c := range l[min(1, len(l)):] {
		if c.State == runtime.ContainerExited {
			return c
		}
	}
	return nil
}

func (o observed) running() []*runtime.Container {
	var out []*runtime.Container
	for _, l := range o.instances {
		for _, c := range l {
			if c.State == runtime.ContainerRunning {
				out = append(out, c)
			}
		}
	}
	return out
}

// sandboxReady reports whether the newest sandbox runs and was made for the pod as it is now.
// A sandbox from before the hash was recorded counts as current, so an upgrade restarts nothing.
func (o observed) sandboxReady(pod *corev1.Pod) bool {
	sb := o.sandbox
	return sb != nil && sb.Ready() && (sb.SpecHash == "" || sb.SpecHash == runtime.SandboxHash(pod))
}

// startAction is one container to start.
type startAction struct {
	container    *corev1.Container
	restartCount int
	backOff      time.Duration
	// reuse is a created-but-never-started instance to start instead of making a new one.
	reuse *runtime.Container
}

// waitState is a container's waiting reason and message.
type waitState struct {
	reason, message string
}

// actions is what one sync does to bring a pod to its spec, computed by plan.
type actions struct {
	// newSandbox: kill everything and make a new sandbox before starting containers.
	newSandbox bool
	// stopSandbox: the pod has finished; stop its sandbox and release its IP.
	stopSandbox bool
	kill        []*runtime.Container
	remove      []*runtime.Container
	start       []startAction
	// waiting holds the containers held back by restart back-off, with their CrashLoopBackOff state.
	waiting map[string]waitState
	// retryIn is when a back-off ends and the pod needs another sync; 0 for none.
	retryIn time.Duration
}

// shouldRestart reports whether an exited container is restarted under policy.
func shouldRestart(policy corev1.RestartPolicy, exitCode int) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// backOffOf is the wait after c exits before its next instance starts: the one recorded with it,
// or the initial one again if it had run long enough to count as healthy.
func backOffOf(c *runtime.Container) time.Duration {
	if c.BackOff <= 0 || (!c.StartedAt.IsZero() && c.FinishedAt.Sub(c.StartedAt) >= backOffReset) {
		return initialBackOff
	}
	return c.BackOff
}

// nextBackOff is the back-off of the instance that follows prev: double prev's.
func nextBackOff(prev *runtime.Container) time.Duration {
	return min(2*backOffOf(prev), maxBackOff)
}

// plan computes, as the kubelet's computePodActions does, what to do for pod given what runs.
func plan(pod *corev1.Pod, o observed, now time.Time) actions {
	a := actions{waiting: map[string]waitState{}}
	wanted := map[string]bool{}
	for i := range pod.Spec.Containers {
		wanted[pod.Spec.Containers[i].Name] = true
	}
	// Instances of containers the spec no longer has are stopped and removed.
	for name, list := range o.instances {
		if !wanted[name] {
			a.remove = append(a.remove, list...)
		}
	}
	sandboxOK := o.sandboxReady(pod)
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		hash := runtime.ContainerHash(c)
		cur := o.latest(c.Name)
		switch {
		case cur == nil:
			a.start = append(a.start, startAction{container: c, backOff: initialBackOff})
		case cur.State == runtime.ContainerRunning && sandboxOK && cur.SpecHash == hash:
			// Runs as specified.
		case cur.State == runtime.ContainerRunning:
			// A changed spec (or a sandbox that is gone) restarts it, without back-off.
			a.kill = append(a.kill, cur)
			a.start = append(a.start, startAction{container: c, restartCount: cur.RestartCount + 1, backOff: cur.BackOff})
		case cur.State == runtime.ContainerCreated:
			// Made but never started (the agent stopped in between): start it if still current.
			if cur.SpecHash == hash && sandboxOK && cur.SandboxID == o.sandbox.ID {
				a.start = append(a.start, startAction{container: c, restartCount: cur.RestartCount, backOff: cur.BackOff, reuse: cur})
			} else {
				a.remove = append(a.remove, cur)
				a.start = append(a.start, startAction{container: c, restartCount: cur.RestartCount, backOff: cur.BackOff})
			}
		case cur.SpecHash != hash && shouldRestart(pod.Spec.RestartPolicy, cur.ExitCode):
			// Exited, and its spec has changed since: a new spec starts afresh, without the old
			// one's back-off, as the kubelet keys back-off by spec.
			a.start = append(a.start, startAction{container: c, restartCount: cur.RestartCount + 1, backOff: initialBackOff})
		case !shouldRestart(pod.Spec.RestartPolicy, cur.ExitCode):
			// Exited for good.
		default:
			due := cur.FinishedAt.Add(backOffOf(cur))
			if now.Before(due) {
				a.waiting[c.Name] = waitState{
					reason: "CrashLoopBackOff",
					message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
						backOffOf(cur), c.Name, pod.Name, pod.Namespace, pod.UID),
				}
				a.retryIn = minPositive(a.retryIn, due.Sub(now))
				continue
			}
			a.start = append(a.start, startAction{container: c, restartCount: cur.RestartCount + 1, backOff: nextBackOff(cur)})
		}
	}
	// Keep the latest instance and the previous exited one of each container; the others go:
	// older exited ones, and any older one still created or running, which a sync cut short by
	// the agent's death can leave beside its replacement.
	for name, list := range o.instances {
		if !wanted[name] {
			continue
		}
		prev := o.previous(name)
		for _, c := range list[1:] {
			if c != prev {
				a.remove = append(a.remove, c)
			}
		}
	}
	switch {
	case len(a.start) > 0 && !sandboxOK && pod.Spec.RestartPolicy == corev1.RestartPolicyNever && len(o.instances) > 0:
		// A pod that never restarts does not get a new sandbox once it has run: its containers
		// are stopped and the pod ends, as under the kubelet.
		a.kill, a.start = o.running(), nil
		a.stopSandbox = o.sandbox != nil
	case len(a.start) > 0 && !sandboxOK:
		a.newSandbox = true
		a.kill = o.running()
		for i := range a.start {
			a.start[i].reuse = nil
		}
	case len(a.start) == 0 && len(a.waiting) == 0 && len(o.running()) == 0 && o.sandbox != nil:
		// Nothing runs and nothing will: the pod has finished.
		a.stopSandbox = true
	}
	return a
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || b < a {
		return b
	}
	return a
}
