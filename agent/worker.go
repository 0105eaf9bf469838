package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/validation"
	"github.com/podagent/podagent/internal/keys"
	"github.com/podagent/podagent/runtime"
)

// minimumGracePeriod is the least a container is given to stop, as the kubelet's
// minimumGracePeriodInSeconds: even a forced deletion sends SIGTERM first.
const minimumGracePeriod = 2 * time.Second

// resyncPeriod is how often a worker syncs its pod when nothing woke it.
const resyncPeriod = 10 * time.Second

// podWorker syncs one pod, in its own goroutine, so that a pod that takes long (a 30 s grace
// period, a slow pull) never holds up another.
type podWorker struct {
	uid             types.UID
	namespace, name string
	wake            chan struct{}
	// imageErrs holds, per container, the last image error and when to try again.
	imageErrs map[string]imageErr
	// createErrs holds, per container, why it could not be created at the last try.
	createErrs map[string]waitState
	// started: the pod's containers have all been seen running (for the start latency metric).
	started bool
	// goneGrace is the grace period, in seconds, of a deletion that removed the pod's object at
	// once; -1 when none was seen (then each container's own applies).
	goneGrace atomic.Int64
}

type imageErr struct {
	wait    waitState
	retryAt time.Time
	backOff time.Duration
}

func newPodWorker(uid types.UID, namespace, name string) *podWorker {
	w := &podWorker{uid: uid, namespace: namespace, name: name, wake: make(chan struct{}, 1),
		imageErrs: map[string]imageErr{}, createErrs: map[string]waitState{}}
	w.goneGrace.Store(-1)
	return w
}

// poke asks the worker to sync soon; it never blocks.
func (w *podWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) ref() runtime.PodRef {
	return runtime.PodRef{Namespace: w.namespace, Name: w.name, UID: string(w.uid)}
}

// run syncs until the pod is gone and nothing of it runs.
func (w *podWorker) run(ctx context.Context, a *Agent) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	errBackOff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		start := time.Now()
		done, next, err := a.syncPod(ctx, w)
		a.metrics.syncDuration.Observe(time.Since(start).Seconds())
		if err != nil && ctx.Err() == nil {
			// Retry soon, but back off from a failure that persists (containerd down, say).
			errBackOff = min(max(2*errBackOff, time.Second), 30*time.Second)
			slog.Error("sync pod", "pod", w.ref().String(), "uid", w.uid, "err", err, "retry_in", errBackOff)
			next = errBackOff
		} else {
			errBackOff = 0
		}
		if done && err == nil {
			return
		}
		timer.Reset(max(next, 10*time.Millisecond))
	}
}

// syncPod brings one pod's containers to its spec and writes its status. It reports whether the
// worker is done (the pod is gone and so is everything of it) and when it wants to run again.
func (a *Agent) syncPod(ctx context.Context, w *podWorker) (done bool, next time.Duration, err error) {
	pod, err := a.desiredPod(ctx, w)
	if err != nil {
		return false, time.Second, err
	}
	switch {
	case pod == nil:
		// Not desired: deleted at once (with that deletion's grace period, at least the kubelet's
		// minimum), or while the agent was down, or an orphan (with the grace period recorded with
		// its containers).
		grace := runtime.UsePodGracePeriod
		if g := w.goneGrace.Load(); g >= 0 {
			grace = max(time.Duration(g)*time.Second, minimumGracePeriod)
		}
		// The event of a deletion that gave a grace period may come after this sync began (another
		// wake-up came first): it cuts the containers' own, longer, grace period short.
		interrupted, err := a.removePod(ctx, w, grace, func(context.Context) bool {
			return grace == runtime.UsePodGracePeriod && w.goneGrace.Load() >= 0
		})
		if interrupted {
			return false, 0, nil
		}
		if err != nil {
			return false, 0, err
		}
		a.static.removed(w.uid)
		// A static pod whose manifest came back while it was removed now starts anew.
		return a.static.get(w.uid) == nil, 0, nil
	case pod.DeletionTimestamp != nil:
		return a.finishDeletion(ctx, w, pod)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		// Terminal is final: make sure nothing runs, keep the status.
		return false, resyncPeriod, a.stopFinishedPod(ctx, w)
	}
	o, err := a.observe(ctx, w.uid)
	if err != nil {
		return false, time.Second, err
	}
	if o.sandbox == nil && len(o.instances) == 0 {
		// Not started yet: admitted first, as the kubelet admits a pod before it runs it.
		if errs := validation.NodeAdmission(&pod.Spec); len(errs) > 0 {
			return false, resyncPeriod, a.reject(ctx, pod, "UnsupportedPodSpec", "podagent does not support: "+errs.ToAggregate().Error())
		}
	}
	act := plan(pod, o, time.Now())
	errs := []error{a.execute(ctx, w, pod, o, act)}
	if o, err = a.observe(ctx, w.uid); err != nil {
		return false, time.Second, errors.Join(append(errs, err)...)
	}
	waiting := act.waiting
	for name, ws := range waiting {
		if ws.reason == "CrashLoopBackOff" {
			a.event(ctx, pod, name, corev1.EventTypeWarning, "BackOff",
				fmt.Sprintf("Back-off restarting failed container %s in pod %s_%s(%s)", name, pod.Name, pod.Namespace, pod.UID))
		}
	}
	for name, ie := range w.imageErrs {
		if !hasContainer(pod, name) {
			delete(w.imageErrs, name)
			continue
		}
		waiting[name] = ie.wait
		if d := time.Until(ie.retryAt); d > 0 {
			act.retryIn = minPositive(act.retryIn, d)
		}
	}
	for name, ws := range w.createErrs {
		if _, ok := waiting[name]; !ok && hasContainer(pod, name) {
			waiting[name] = ws
		}
	}
	if a.static.get(pod.UID) != nil {
		errs = append(errs, a.syncMirror(ctx, pod))
	}
	errs = append(errs, a.writeStatus(ctx, pod, func(p *corev1.Pod) corev1.PodStatus {
		s := podStatus(statusInput{pod: p, observed: o, waiting: waiting, hostIP: a.hostIP, imageIDs: a.imageIDs(ctx, o), now: time.Now()})
		if !w.started && allRunning(s) {
			w.started = true
			if firstStart(o) {
				a.metrics.podStart.Observe(time.Since(p.CreationTimestamp.Time).Seconds())
			}
		}
		return s
	}))
	next = resyncPeriod
	if act.retryIn > 0 {
		next = min(next, act.retryIn)
	}
	return false, next, errors.Join(errs...)
}

// desiredPod is the pod the worker is for, or nil if the node should not run it: a static pod
// (with the status its mirror shows), or a pod the API bound to the node, with the worker's UID.
func (a *Agent) desiredPod(_ context.Context, w *podWorker) (*corev1.Pod, error) {
	if p := a.static.get(w.uid); p != nil {
		if a.static.removing(w.uid) {
			return nil, nil // its earlier self is still being removed
		}
		if m := a.mirrorOf(p); m != nil {
			p.Status = m.Status
		}
		return p, nil
	}
	if p := a.pods.get(w.namespace, w.name); p != nil && p.UID == w.uid && !isMirror(p) {
		return p, nil
	}
	return nil, nil
}

func (a *Agent) observe(ctx context.Context, uid types.UID) (observed, error) {
	sbs, err := a.rt.PodSandboxes(ctx, string(uid))
	if err != nil {
		return observed{}, err
	}
	ctrs, err := a.rt.PodContainers(ctx, string(uid))
	if err != nil {
		return observed{}, err
	}
	return observe(sbs, ctrs), nil
}

// execute carries out a plan. It goes on after a failed container, so that one bad container
// does not keep its siblings from starting.
func (a *Agent) execute(ctx context.Context, w *podWorker, pod *corev1.Pod, o observed, act actions) error {
	var errs []error
	grace := podGracePeriod(pod)
	for _, list := range o.instances {
		for _, c := range list {
			if c.Unreaped {
				// Exited: record how, and let its shim go.
				errs = append(errs, a.rt.StopContainer(ctx, c.ID, 0))
			}
		}
	}
	for _, c := range act.kill {
		a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Killing", "Stopping container "+c.Name)
		errs = append(errs, a.rt.StopContainer(ctx, c.ID, grace))
	}
	for _, c := range act.remove {
		errs = append(errs, a.rt.StopContainer(ctx, c.ID, grace), a.rt.RemoveContainer(ctx, c.ID))
	}
	for _, sb := range o.stale {
		errs = append(errs, a.rt.RemoveSandbox(ctx, sb.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	sb := o.sandbox
	if act.stopSandbox && sb != nil {
		return a.rt.RemoveSandbox(ctx, sb.ID)
	}
	if act.newSandbox {
		if sb != nil {
			if err := a.rt.RemoveSandbox(ctx, sb.ID); err != nil {
				return err
			}
		}
		var err error
		if sb, err = a.rt.RunSandbox(ctx, pod); err != nil {
			return err
		}
	}
	for _, s := range act.start {
		errs = append(errs, a.startContainer(ctx, w, pod, sb, s))
	}
	return errors.Join(errs...)
}

// startContainer makes sure the image is there (under the pull policy, with back-off on failure)
// and creates and starts one container.
func (a *Agent) startContainer(ctx context.Context, w *podWorker, pod *corev1.Pod, sb *runtime.Sandbox, s startAction) error {
	c := s.container
	if ie, ok := w.imageErrs[c.Name]; ok && time.Now().Before(ie.retryAt) {
		ie.wait.reason = "ImagePullBackOff"
		ie.wait.message = fmt.Sprintf("Back-off pulling image %q", c.Image)
		w.imageErrs[c.Name] = ie
		a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "BackOff", ie.wait.message)
		return nil
	}
	if err := a.ensureImage(ctx, w, pod, c); err != nil {
		return err
	}
	ctr := s.reuse
	if ctr == nil {
		if err := a.writeVolumes(ctx, pod); err != nil {
			if ctx.Err() == nil {
				w.createErrs[c.Name] = waitState{reason: "CreateContainerConfigError", message: err.Error()}
				a.event(ctx, pod, "", corev1.EventTypeWarning, "FailedMount", err.Error())
			}
			return err
		}
		var err error
		ctr, err = a.rt.CreateContainer(ctx, sb, pod, c, runtime.ContainerOptions{
			RestartCount: s.restartCount, SpecHash: runtime.ContainerHash(c), BackOff: s.backOff,
		})
		if err != nil {
			if ctx.Err() == nil {
				w.createErrs[c.Name] = waitState{reason: "CreateContainerError", message: err.Error()}
				a.event(ctx, pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
			}
			return err
		}
		a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Created", "Created container: "+c.Name)
	}
	delete(w.createErrs, c.Name)
	// A start that fails is recorded on the container as a StartError exit, which the restart
	// policy and back-off then handle.
	if s.restartCount > 0 {
		a.metrics.restarts.Inc()
	}
	if err := a.rt.StartContainer(ctx, ctr); err != nil {
		if ctx.Err() == nil {
			a.event(ctx, pod, c.Name, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		}
		return err
	}
	a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	return nil
}

// stopFinishedPod stops whatever still runs of a pod whose phase is final.
func (a *Agent) stopFinishedPod(ctx context.Context, w *podWorker) error {
	o, err := a.observe(ctx, w.uid)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range o.running() {
		errs = append(errs, a.rt.StopContainer(ctx, c.ID, c.GracePeriod))
	}
	if o.sandbox != nil {
		errs = append(errs, a.rt.RemoveSandbox(ctx, o.sandbox.ID))
	}
	for _, sb := range o.stale {
		errs = append(errs, a.rt.RemoveSandbox(ctx, sb.ID))
	}
	return errors.Join(errs...)
}

// finishDeletion stops a pod being deleted within what is left of its grace period, removes
// everything of it, and then the object.
func (a *Agent) finishDeletion(ctx context.Context, w *podWorker, pod *corev1.Pod) (bool, time.Duration, error) {
	grace := time.Until(pod.DeletionTimestamp.Time)
	if g := pod.DeletionGracePeriodSeconds; g != nil {
		grace = min(grace, time.Duration(*g)*time.Second)
	}
	grace = max(grace, 0)
	if o, err := a.observe(ctx, w.uid); err == nil {
		for _, c := range o.running() {
			a.event(ctx, pod, c.Name, corev1.EventTypeNormal, "Killing", "Stopping container "+c.Name)
		}
	}
	// A second deletion may shorten the grace period while the containers stop: it cuts the wait
	// short, and the next sync stops them within what is left of the new period.
	shortened, err := a.removePod(ctx, w, grace, func(ctx context.Context) bool {
		p, err := a.desiredPod(ctx, w)
		return err == nil && p != nil && p.DeletionTimestamp != nil && p.DeletionTimestamp.Before(pod.DeletionTimestamp)
	})
	if shortened {
		return false, 0, nil
	}
	if err != nil {
		return false, time.Second, err
	}
	err = a.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: ptr.To(pod.UID)}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, time.Second, fmt.Errorf("remove deleted pod %s: %w", w.ref(), err)
	}
	slog.Info("pod deleted", "pod", w.ref().String())
	return true, 0, nil
}

// writeStatus writes the status compute gives for the pod as the API has it, as the kubelet's
// status manager does: nothing when it is unchanged, and with the object read again after a
// conflict. A static pod's status goes to its mirror, once there is one.
func (a *Agent) writeStatus(ctx context.Context, pod *corev1.Pod, compute func(*corev1.Pod) corev1.PodStatus) error {
	static := a.static.get(pod.UID) != nil
	cur := a.pods.get(pod.Namespace, pod.Name)
	if static {
		cur = a.mirrorOf(pod)
	}
	if cur == nil || (!static && cur.UID != pod.UID) {
		return nil
	}
	pods := a.client.CoreV1().Pods(pod.Namespace)
	for range 3 {
		status := compute(cur)
		if apiequality.Semantic.DeepEqual(cur.Status, status) {
			return nil
		}
		next := cur.DeepCopy()
		next.Status = status
		_, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			if err != nil {
				return fmt.Errorf("write status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			return nil
		}
		if cur, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("read pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if (!static && cur.UID != pod.UID) || (static && !isMirror(cur)) {
			return nil
		}
	}
	return fmt.Errorf("write status of pod %s/%s: it kept changing", pod.Namespace, pod.Name)
}

// isStatic reports whether pod comes from the node's manifests.
func isStatic(pod *corev1.Pod) bool {
	return pod.Annotations[keys.ConfigSourceAnnotation] != "" && !isMirror(pod)
}

// podGracePeriod is the pod's terminationGracePeriodSeconds as a duration (defaulted on admission,
// but a nil is not a reason to panic).
func podGracePeriod(pod *corev1.Pod) time.Duration {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 {
		return time.Duration(*g) * time.Second
	}
	return runtime.DefaultGracePeriod
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return true
		}
	}
	return false
}

// allRunning reports whether every container of a status runs.
func allRunning(s corev1.PodStatus) bool {
	for _, cs := range s.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return len(s.ContainerStatuses) > 0
}

// firstStart reports whether what runs is the pod's first instance of everything: a pod found
// running by a restarted agent, or restarted, is not a pod start.
func firstStart(o observed) bool {
	for _, list := range o.instances {
		if len(list) != 1 || list[0].RestartCount != 0 {
			return false
		}
	}
	return true
}

// removePod removes everything of the worker's pod with grace, unless interrupt, checked at each
// wake-up meanwhile, says the grace period has changed: then it stops waiting and reports so,
// and the next sync removes the pod with the new one.
func (a *Agent) removePod(ctx context.Context, w *podWorker, grace time.Duration, interrupt func(context.Context) bool) (bool, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	interrupted := make(chan struct{})
	go func() {
		for {
			select {
			case <-rctx.Done():
				return
			case <-w.wake:
				if interrupt(rctx) {
					close(interrupted)
					cancel()
					return
				}
			}
		}
	}()
	err := a.rt.RemovePod(rctx, w.ref(), grace)
	select {
	case <-interrupted:
		return true, nil
	default:
		return false, err
	}
}

// reject fails a pod the node will not run, as the kubelet's admission does: phase Failed with
// the reason and a message saying why, and a warning event.
func (a *Agent) reject(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	slog.Warn("pod rejected", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "message", msg)
	a.event(ctx, pod, "", corev1.EventTypeWarning, reason, msg)
	return a.writeStatus(ctx, pod, func(p *corev1.Pod) corev1.PodStatus {
		s := corev1.PodStatus{Phase: corev1.PodFailed, Reason: reason, Message: "Pod was rejected: " + msg,
			QOSClass: p.Status.QOSClass, Conditions: p.Status.Conditions}
		if p.Status.StartTime != nil {
			s.StartTime = p.Status.StartTime
		} else {
			s.StartTime = ptr.To(metav1.Now())
		}
		return s
	})
}
