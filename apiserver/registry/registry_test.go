package registry

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/store"
)

func TestSetPodDefaults(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Image: "luksa/kubia", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
		{Name: "b", Image: "busybox:1.36"},
	}}}
	SetPodDefaults(pod)
	s := pod.Spec
	checks := []struct {
		field string
		ok    bool
	}{
		{"namespace", pod.Namespace == "default"},
		{"restartPolicy", s.RestartPolicy == corev1.RestartPolicyAlways},
		{"dnsPolicy", s.DNSPolicy == corev1.DNSClusterFirst},
		{"terminationGracePeriodSeconds", s.TerminationGracePeriodSeconds != nil && *s.TerminationGracePeriodSeconds == 30},
		{"schedulerName", s.SchedulerName == "default-scheduler"},
		{"securityContext", s.SecurityContext != nil},
		{"imagePullPolicy of :latest", s.Containers[0].ImagePullPolicy == corev1.PullAlways},
		{"imagePullPolicy of a tag", s.Containers[1].ImagePullPolicy == corev1.PullIfNotPresent},
		{"port protocol", s.Containers[0].Ports[0].Protocol == corev1.ProtocolTCP},
		{"terminationMessagePath", s.Containers[0].TerminationMessagePath == "/dev/termination-log"},
		{"terminationMessagePolicy", s.Containers[0].TerminationMessagePolicy == corev1.TerminationMessageReadFile},
		{"default tolerations", len(s.Tolerations) == 2 && *s.Tolerations[0].TolerationSeconds == 300},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("default for %s not set: %+v", c.field, pod)
		}
	}
	// Defaulting twice changes nothing: stored pods hash the same after a restart.
	again := pod.DeepCopy()
	SetPodDefaults(again)
	if len(again.Spec.Tolerations) != 2 {
		t.Errorf("defaulting twice added tolerations: %+v", again.Spec.Tolerations)
	}
}

func TestDeletePodGracePeriod(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := New(st)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	mk := func(name, node string, phase corev1.PodPhase) {
		p, err := r.CreatePod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = phase
		if _, err := st.Update(ctx, store.Pods, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, node string
		phase      corev1.PodPhase
		grace      *int64
		wantGone   bool
		wantGrace  int64
	}{
		{"unscheduled", "", corev1.PodPending, nil, true, 0},
		{"succeeded", "n", corev1.PodSucceeded, nil, true, 0},
		{"running", "n", corev1.PodRunning, nil, false, 30},
		{"running-grace-5", "n", corev1.PodRunning, ptr.To[int64](5), false, 5},
		{"running-grace-0", "n", corev1.PodRunning, ptr.To[int64](0), true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mk(tc.name, tc.node, tc.phase)
			p, gone, err := r.DeletePod(ctx, "default", tc.name, tc.grace, nil)
			if err != nil || gone != tc.wantGone {
				t.Fatalf("DeletePod: gone %v err %v, want gone %v", gone, err, tc.wantGone)
			}
			if gone {
				if _, err := st.Get(ctx, store.Pods, "default", tc.name); !apierrors.IsNotFound(err) {
					t.Errorf("pod still stored: %v", err)
				}
				return
			}
			if p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != tc.wantGrace ||
				!p.DeletionTimestamp.Time.Equal(now.Add(time.Duration(tc.wantGrace)*time.Second)) {
				t.Errorf("deletion grace %v at %v, want %d", p.DeletionGracePeriodSeconds, p.DeletionTimestamp, tc.wantGrace)
			}
			// A second delete may shorten the grace period, never lengthen it.
			p, _, err = r.DeletePod(ctx, "default", tc.name, ptr.To[int64](600), nil)
			if err != nil || *p.DeletionGracePeriodSeconds != tc.wantGrace {
				t.Errorf("a longer second grace period changed it to %v (%v)", p.DeletionGracePeriodSeconds, err)
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := New(st)
	ctx := context.Background()
	if err := r.EnsureDefaultNamespaces(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.EnsureDefaultNamespaces(ctx); err != nil {
		t.Fatalf("second EnsureDefaultNamespaces: %v", err)
	}
	objs, _, err := st.List(ctx, store.Namespaces, "")
	if err != nil || len(objs) != 4 {
		t.Fatalf("namespaces %d (%v), want 4", len(objs), err)
	}
	ns := objs[0].(*corev1.Namespace)
	if ns.Status.Phase != corev1.NamespaceActive || ns.Labels["kubernetes.io/metadata.name"] != ns.Name {
		t.Errorf("namespace %+v lacks phase or name label", ns)
	}
	if _, err := r.CreateNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}}); !apierrors.IsInvalid(err) {
		t.Errorf("invalid namespace name: %v, want Invalid", err)
	}
	if _, err := r.DeleteNamespace(ctx, "kube-system", nil); !apierrors.IsForbidden(err) {
		t.Errorf("delete kube-system: %v, want Forbidden", err)
	}
	if _, err := r.DeleteNamespace(ctx, "kube-node-lease", nil); err != nil {
		t.Errorf("delete kube-node-lease: %v", err)
	}
}
