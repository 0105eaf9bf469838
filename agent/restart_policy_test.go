package agent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/internal/testenv"
)

// Acceptance 2: a container that exits, under each restart policy, behaves as under the kubelet.
func TestRestartPolicy(t *testing.T) {
	ta := startAgent(t, "node")
	type want struct {
		phase corev1.PodPhase
		// restarts: the container is restarted with back-off, else it stays terminated.
		restarts bool
	}
	tests := []struct {
		name   string
		policy corev1.RestartPolicy
		exit   int
		want   want
	}{
		{"always-fails", corev1.RestartPolicyAlways, 1, want{corev1.PodRunning, true}},
		{"always-succeeds", corev1.RestartPolicyAlways, 0, want{corev1.PodRunning, true}},
		{"onfailure-fails", corev1.RestartPolicyOnFailure, 1, want{corev1.PodRunning, true}},
		{"onfailure-succeeds", corev1.RestartPolicyOnFailure, 0, want{corev1.PodSucceeded, false}},
		{"never-fails", corev1.RestartPolicyNever, 1, want{corev1.PodFailed, false}},
		{"never-succeeds", corev1.RestartPolicyNever, 0, want{corev1.PodSucceeded, false}},
	}
	fromRV := ta.store().ResourceVersion()
	for _, tc := range tests {
		p := newPod(tc.name, busybox("main", "sh", "-c", fmt.Sprintf("sleep 1; exit %d", tc.exit)))
		p.Spec.RestartPolicy = tc.policy
		ta.create(t, p)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.want.restarts {
				p := ta.waitPod(t, "default", tc.name, time.Minute, func(p *corev1.Pod) error {
					if p.Status.Phase != tc.want.phase {
						return fmt.Errorf("phase %s, want %s: %s", p.Status.Phase, tc.want.phase, describeContainers(p))
					}
					return nil
				})
				cs := containerStatus(p, "main")
				term := cs.State.Terminated
				wantReason := map[int]string{0: "Completed", 1: "Error"}[tc.exit]
				if term == nil || term.ExitCode != int32(tc.exit) || term.Reason != wantReason || cs.RestartCount != 0 {
					t.Fatalf("container status %s, want terminated %s exit %d without restarts", describeContainers(p), wantReason, tc.exit)
				}
				if term.StartedAt.IsZero() || term.FinishedAt.Before(&term.StartedAt) || !strings.HasPrefix(term.ContainerID, "containerd://") {
					t.Errorf("terminated state %+v lacks times or container ID", term)
				}
				wantReady := map[corev1.PodPhase]string{corev1.PodSucceeded: "PodCompleted", corev1.PodFailed: "PodFailed"}[tc.want.phase]
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != wantReady) {
						t.Errorf("Ready condition %+v, want False/%s", c, wantReady)
					}
				}
				// A finished pod's sandbox is stopped and its address released.
				testenv.Eventually(t, 10*time.Second, func() error {
					sbs, err := ta.rt.PodSandboxes(ta.rt.Ctx, string(p.UID))
					if err != nil || len(sbs) != 0 {
						return fmt.Errorf("finished pod still has %d sandboxes (%v)", len(sbs), err)
					}
					return nil
				})
				return
			}
			// First the back-off after the first exit, then a restart, then a doubled back-off.
			p := ta.waitPodSince(t, "default", tc.name, fromRV, time.Minute, func(p *corev1.Pod) error {
				cs := containerStatus(p, "main")
				w, last := cs.State.Waiting, cs.LastTerminationState.Terminated
				if cs.RestartCount != 0 || w == nil || w.Reason != "CrashLoopBackOff" || !strings.Contains(w.Message, "back-off 10s") ||
					last == nil || last.ExitCode != int32(tc.exit) {
					return fmt.Errorf("%s, want CrashLoopBackOff (back-off 10s) after exit %d", describeContainers(p), tc.exit)
				}
				if p.Status.Phase != tc.want.phase {
					return fmt.Errorf("phase %s, want %s", p.Status.Phase, tc.want.phase)
				}
				return nil
			})
			ta.waitPodSince(t, "default", tc.name, p.ResourceVersion, time.Minute, func(p *corev1.Pod) error {
				cs := containerStatus(p, "main")
				w := cs.State.Waiting
				if cs.RestartCount != 1 || w == nil || w.Reason != "CrashLoopBackOff" || !strings.Contains(w.Message, "back-off 20s") {
					return fmt.Errorf("%s, want 1 restart then CrashLoopBackOff (back-off 20s)", describeContainers(p))
				}
				return nil
			})
		})
	}
}
