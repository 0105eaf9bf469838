package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/runtime"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	spec := corev1.Container{Name: "main", Image: "busybox", Command: []string{"sleep", "1"}}
	changed := spec
	changed.Command = []string{"sleep", "2"}
	pod := func(policy corev1.RestartPolicy) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u"},
			Spec:       corev1.PodSpec{RestartPolicy: policy, Containers: []corev1.Container{spec}},
		}
	}
	sandbox := &runtime.Sandbox{ID: "sb", PID: 1}
	deadSandbox := &runtime.Sandbox{ID: "sb"}
	inst := func(state runtime.ContainerState, rc, exit int, finishedAgo, ran time.Duration, backOff time.Duration, hash string) *runtime.Container {
		fin := now.Add(-finishedAgo)
		return &runtime.Container{ID: "c", Name: "main", SandboxID: "sb", State: state, RestartCount: rc, ExitCode: exit,
			StartedAt: fin.Add(-ran), FinishedAt: fin, BackOff: backOff, SpecHash: hash}
	}
	hash := runtime.ContainerHash(&spec)
	tests := []struct {
		name        string
		policy      corev1.RestartPolicy
		sb          *runtime.Sandbox
		ctr         *runtime.Container
		wantStart   int // restartCount of the started instance, -1 for none
		wantBackOff time.Duration
		wantWait    string
		wantNewSB   bool
		wantStopSB  bool
		wantKill    int
	}{
		{name: "new pod", policy: corev1.RestartPolicyAlways, wantStart: 0, wantBackOff: initialBackOff, wantNewSB: true},
		{name: "running as specified", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerRunning, 0, 0, 0, 0, initialBackOff, hash), wantStart: -1},
		{name: "running, spec changed", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerRunning, 2, 0, 0, 0, 40*time.Second, runtime.ContainerHash(&changed)), wantStart: 3, wantBackOff: 40 * time.Second, wantKill: 1},
		{name: "exited, in back-off", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 0, 1, 5*time.Second, time.Second, initialBackOff, hash), wantStart: -1, wantWait: "CrashLoopBackOff"},
		{name: "exited, back-off over", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 1, 1, 21*time.Second, time.Second, 20*time.Second, hash), wantStart: 2, wantBackOff: 40 * time.Second},
		{name: "back-off capped", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 9, 1, 6*time.Minute, time.Second, maxBackOff, hash), wantStart: 10, wantBackOff: maxBackOff},
		{name: "ran long: back-off resets", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 9, 1, 11*time.Second, time.Hour, maxBackOff, hash), wantStart: 10, wantBackOff: 2 * initialBackOff},
		{name: "exited, spec changed: no back-off", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 3, 1, time.Second, time.Second, 80*time.Second, "old"), wantStart: 4, wantBackOff: initialBackOff},
		{name: "OnFailure, succeeded", policy: corev1.RestartPolicyOnFailure, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 0, 0, time.Hour, time.Second, initialBackOff, hash), wantStart: -1, wantStopSB: true},
		{name: "OnFailure, failed", policy: corev1.RestartPolicyOnFailure, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 0, 2, time.Hour, time.Second, initialBackOff, hash), wantStart: 1, wantBackOff: 2 * initialBackOff},
		{name: "Never, failed", policy: corev1.RestartPolicyNever, sb: sandbox,
			ctr: inst(runtime.ContainerExited, 0, 1, time.Hour, time.Second, initialBackOff, hash), wantStart: -1, wantStopSB: true},
		{name: "sandbox died: new sandbox, container restarted", policy: corev1.RestartPolicyAlways, sb: deadSandbox,
			ctr: inst(runtime.ContainerRunning, 0, 0, 0, 0, initialBackOff, hash), wantStart: 1, wantBackOff: initialBackOff, wantNewSB: true, wantKill: 1},
		{name: "Never, sandbox died: pod ends", policy: corev1.RestartPolicyNever, sb: deadSandbox,
			ctr: inst(runtime.ContainerRunning, 0, 0, 0, 0, initialBackOff, hash), wantStart: -1, wantStopSB: true, wantKill: 1},
		{name: "created, never started: started as is", policy: corev1.RestartPolicyAlways, sb: sandbox,
			ctr: inst(runtime.ContainerCreated, 0, 0, 0, 0, initialBackOff, hash), wantStart: 0, wantBackOff: initialBackOff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sbs []*runtime.Sandbox
			if tc.sb != nil {
				sbs = append(sbs, tc.sb)
			}
			var ctrs []*runtime.Container
			if tc.ctr != nil {
				ctrs = append(ctrs, tc.ctr)
			}
			a := plan(pod(tc.policy), observe(sbs, ctrs), now)
			switch {
			case tc.wantStart < 0 && len(a.start) > 0:
				t.Errorf("starts %+v, want none", a.start[0])
			case tc.wantStart >= 0 && len(a.start) != 1:
				t.Errorf("starts %d containers, want 1", len(a.start))
			case tc.wantStart >= 0 && (a.start[0].restartCount != tc.wantStart || a.start[0].backOff != tc.wantBackOff):
				t.Errorf("start restartCount %d backOff %s, want %d %s", a.start[0].restartCount, a.start[0].backOff, tc.wantStart, tc.wantBackOff)
			}
			if got := a.waiting["main"].reason; got != tc.wantWait {
				t.Errorf("waiting %q, want %q", got, tc.wantWait)
			}
			if tc.wantWait != "" && a.retryIn != 5*time.Second {
				t.Errorf("retryIn %s, want the rest of the back-off (5s)", a.retryIn)
			}
			if a.newSandbox != tc.wantNewSB || a.stopSandbox != tc.wantStopSB || len(a.kill) != tc.wantKill {
				t.Errorf("newSandbox %v stopSandbox %v kill %d, want %v %v %d", a.newSandbox, a.stopSandbox, len(a.kill), tc.wantNewSB, tc.wantStopSB, tc.wantKill)
			}
		})
	}
}

func TestPlanKeepsLatestAndPrevious(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways,
		Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
	hash := runtime.ContainerHash(&pod.Spec.Containers[0])
	var ctrs []*runtime.Container
	for rc := range 4 {
		state := runtime.ContainerExited
		if rc == 3 {
			state = runtime.ContainerRunning
		}
		ctrs = append(ctrs, &runtime.Container{ID: string(rune('a' + rc)), Name: "main", RestartCount: rc, State: state, SpecHash: hash, SandboxID: "sb"})
	}
	ctrs = append(ctrs, &runtime.Container{ID: "gone", Name: "removed-from-spec", State: runtime.ContainerRunning, SandboxID: "sb"})
	a := plan(pod, observe([]*runtime.Sandbox{{ID: "sb", PID: 1}}, ctrs), time.Now())
	removed := map[string]bool{}
	for _, c := range a.remove {
		removed[c.ID] = true
	}
	want := map[string]bool{"a": true, "b": true, "gone": true}
	if len(removed) != len(want) || !removed["a"] || !removed["b"] || !removed["gone"] {
		t.Errorf("removes %v, want %v (keep the running instance and the previous one)", removed, want)
	}

	// What an agent killed mid-sync leaves beside the running instance: a created one it was
	// replacing (same restart count) and an older one still running. Both go; the previous
	// exited one stays.
	ctrs = []*runtime.Container{
		{ID: "old-exited", Name: "main", RestartCount: 0, State: runtime.ContainerExited, SpecHash: hash, SandboxID: "sb"},
		{ID: "old-running", Name: "main", RestartCount: 1, State: runtime.ContainerRunning, SpecHash: hash, SandboxID: "sb"},
		{ID: "replaced", Name: "main", RestartCount: 2, State: runtime.ContainerCreated, SpecHash: hash, SandboxID: "sb", CreatedAt: time.Unix(1, 0)},
		{ID: "current", Name: "main", RestartCount: 2, State: runtime.ContainerRunning, SpecHash: hash, SandboxID: "sb", CreatedAt: time.Unix(2, 0)},
	}
	a = plan(pod, observe([]*runtime.Sandbox{{ID: "sb", PID: 1}}, ctrs), time.Now())
	removed = map[string]bool{}
	for _, c := range a.remove {
		removed[c.ID] = true
	}
	if len(removed) != 2 || !removed["replaced"] || !removed["old-running"] || len(a.start) != 0 {
		t.Errorf("removes %v and starts %d, want replaced and old-running removed and nothing started", removed, len(a.start))
	}
}
