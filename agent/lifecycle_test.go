package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/internal/keys"
	"github.com/podagent/podagent/internal/testenv"
)

// Acceptance 4: a pod whose nodeSelector the node does not satisfy waits Pending/Unschedulable, and
// runs, without being re-created, once the node gets the label.
func TestNodeSelector(t *testing.T) {
	ta := startAgent(t, "node")
	p := newPod("kubia-gpu", corev1.Container{Name: "kubia", Image: "luksa/kubia", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}})
	p.Spec.NodeSelector = map[string]string{"gpu": "true"}
	created := ta.create(t, p)
	pending := ta.waitPod(t, "default", "kubia-gpu", 30*time.Second, func(p *corev1.Pod) error {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == "Unschedulable" &&
				strings.HasPrefix(c.Message, "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v, want PodScheduled False/Unschedulable", p.Status.Conditions)
	})
	if pending.Status.Phase != corev1.PodPending || pending.Spec.NodeName != "" {
		t.Fatalf("unschedulable pod: phase %s, nodeName %q; want Pending and unbound", pending.Status.Phase, pending.Spec.NodeName)
	}
	if ctrs := ta.runtimeContainers(t, string(created.UID)); len(ctrs) != 0 {
		t.Fatalf("an unschedulable pod has %d containers", len(ctrs))
	}

	_, err := ta.store().GuaranteedUpdate(context.Background(), store.Nodes, "", "node", func(obj store.Object) (store.Object, error) {
		n := obj.(*corev1.Node)
		n.Labels["gpu"] = "true"
		return n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p = ta.waitPod(t, "default", "kubia-gpu", 30*time.Second, running)
	if p.UID != created.UID || p.Spec.NodeName != "node" {
		t.Fatalf("pod re-created or unbound: uid %s (was %s), nodeName %q", p.UID, created.UID, p.Spec.NodeName)
	}
	// The status a user reads: addresses, QoS, conditions, container identity.
	if p.Status.PodIP == "" || p.Status.HostIP == "" || p.Status.StartTime == nil || p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status lacks podIP/hostIP/startTime/qosClass: %+v", p.Status)
	}
	cs := containerStatus(p, "kubia")
	if cs.Image != "docker.io/luksa/kubia:latest" || !strings.HasPrefix(cs.ImageID, "docker.io/luksa/kubia@sha256:") ||
		!strings.HasPrefix(cs.ContainerID, "containerd://") || cs.Started == nil || !*cs.Started {
		t.Errorf("container status %+v lacks image, imageID, containerID or started", cs)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		found := false
		for _, c := range p.Status.Conditions {
			found = found || (c.Type == typ && c.Status == corev1.ConditionTrue)
		}
		if !found {
			t.Errorf("condition %s is not True: %+v", typ, p.Status.Conditions)
		}
	}
}

const twoContainerManifest = `apiVersion: v1
kind: Pod
metadata:
  name: duo
  labels:
    app: duo
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: one
    image: busybox
    command: ["sleep", "3600"]
    env:
    - name: VERSION
      value: "%s"
  - name: two
    image: busybox
    command: ["sleep", "3600"]
`

// Acceptance 3: a manifest dropped into the directory runs; editing one container restarts only
// that container; removing the file removes the pod.
func TestStaticPodLifecycle(t *testing.T) {
	ta := startAgent(t, "node")
	ta.writeManifest(t, "duo.yaml", fmt.Sprintf(twoContainerManifest, "1"))
	p := ta.waitPod(t, "default", "duo-node", 30*time.Second, running)
	if p.Annotations[keys.MirrorAnnotation] == "" || p.Annotations["kubernetes.io/config.source"] != "file" {
		t.Errorf("static pod annotations %v, want a mirror pod from file", p.Annotations)
	}
	one, two := containerStatus(p, "one"), containerStatus(p, "two")

	ta.writeManifest(t, "duo.yaml", fmt.Sprintf(twoContainerManifest, "2"))
	p = ta.waitPod(t, "default", "duo-node", 30*time.Second, func(p *corev1.Pod) error {
		if err := running(p); err != nil {
			return err
		}
		if c := containerStatus(p, "one"); c.ContainerID == one.ContainerID || c.RestartCount != 1 {
			return fmt.Errorf("container one not restarted: %s", describeContainers(p))
		}
		return nil
	})
	if c := containerStatus(p, "two"); c.ContainerID != two.ContainerID || c.RestartCount != 0 || !c.State.Running.StartedAt.Equal(&two.State.Running.StartedAt) {
		t.Errorf("container two was restarted by an edit of container one: %s", describeContainers(p))
	}

	if err := os.Remove(filepath.Join(ta.cfg.ManifestDir, "duo.yaml")); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, "default", "duo-node", string(p.UID), 30*time.Second)
}

// An agent restart restarts nothing: containers, their start times and restart counts stay; a pod
// deleted while the agent was down is removed when it comes back.
func TestAgentRestartKeepsPods(t *testing.T) {
	ta := startAgent(t, "node")
	var uids []string
	for _, name := range []string{"a", "b", "c"} {
		uids = append(uids, string(ta.create(t, newPod(name, busybox("main", "sleep", "3600"))).UID))
	}
	before := map[string]corev1.ContainerStatus{}
	for _, name := range []string{"a", "b", "c"} {
		before[name] = containerStatus(ta.waitPod(t, "default", name, 30*time.Second, running), "main")
	}

	ta.stop()
	// While the agent is down, pod c is deleted from the store.
	st, err := store.Open(filepath.Join(ta.cfg.RootDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Delete(context.Background(), store.Pods, "default", "c", nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// And files of a pod whose removal was cut short: its directory and its logs.
	ghostDir := filepath.Join(ta.cfg.RootDir, "pods", "ghost-uid")
	ghostLogs := filepath.Join(ta.cfg.LogDir, "default_ghost_ghost-uid")
	for _, d := range []string{filepath.Join(ghostDir, "volumes"), filepath.Join(ghostLogs, "main")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ta.start(t)

	ta.waitGone(t, "default", "c", uids[2], 30*time.Second)
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, d := range []string{ghostDir, ghostLogs} {
			if _, err := os.Stat(d); err == nil {
				return fmt.Errorf("%s of a removed pod left", d)
			}
		}
		return nil
	})
	for _, name := range []string{"a", "b"} {
		// Status is re-derived and written after the restart; it must describe the same containers.
		p := ta.waitPod(t, "default", name, 10*time.Second, running)
		cs := containerStatus(p, "main")
		if cs.ContainerID != before[name].ContainerID || cs.RestartCount != 0 || !cs.State.Running.StartedAt.Equal(&before[name].State.Running.StartedAt) {
			t.Errorf("pod %s changed across an agent restart: before %+v, after %+v", name, before[name], cs)
		}
	}
}

// Graceful deletion: the object stays, marked, while its containers get SIGTERM and the grace
// period; a container that ignores SIGTERM is killed when the period ends; then the object goes.
func TestGracefulDeletion(t *testing.T) {
	ta := startAgent(t, "node")
	// busybox sh ignores SIGTERM while it runs `trap "" TERM`; sleep is a child, so it also stays.
	stubborn := newPod("stubborn", busybox("main", "sh", "-c", `trap "" TERM; while true; do sleep 1; done`))
	grace := int64(3)
	stubborn.Spec.TerminationGracePeriodSeconds = &grace
	p := ta.create(t, stubborn)
	ta.waitPod(t, "default", "stubborn", 30*time.Second, running)

	start := time.Now()
	after, gone, err := ta.registry().DeletePod(context.Background(), "default", "stubborn", nil, nil)
	if err != nil || gone {
		t.Fatalf("delete: gone %v, err %v; want a graceful deletion", gone, err)
	}
	if after.DeletionTimestamp == nil || after.DeletionGracePeriodSeconds == nil || *after.DeletionGracePeriodSeconds != 3 {
		t.Fatalf("deleted pod: deletionTimestamp %v, grace %v; want set, 3", after.DeletionTimestamp, after.DeletionGracePeriodSeconds)
	}
	if ta.pod(t, "default", "stubborn") == nil {
		t.Fatal("pod object removed before its containers stopped")
	}
	ta.waitGone(t, "default", "stubborn", string(p.UID), 30*time.Second)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("a container ignoring SIGTERM was gone after %s, before its 3s grace period", d)
	}

	// A second deletion with a shorter grace period cuts a long one short.
	slow := newPod("slow", busybox("main", "sh", "-c", `trap "" TERM; while true; do sleep 1; done`))
	long := int64(600)
	slow.Spec.TerminationGracePeriodSeconds = &long
	p = ta.create(t, slow)
	ta.waitPod(t, "default", "slow", 30*time.Second, running)
	if _, _, err := ta.registry().DeletePod(context.Background(), "default", "slow", nil, nil); err != nil {
		t.Fatal(err)
	}
	ta.waitPod(t, "default", "slow", 10*time.Second, func(p *corev1.Pod) error {
		if p.DeletionTimestamp == nil {
			return fmt.Errorf("not marked for deletion")
		}
		return nil
	})
	one := int64(1)
	if _, _, err := ta.registry().DeletePod(context.Background(), "default", "slow", &one, nil); err != nil {
		t.Fatal(err)
	}
	ta.waitGone(t, "default", "slow", string(p.UID), 30*time.Second)

	// A forced deletion (grace 0) removes the object at once; the containers still get SIGTERM
	// and the kubelet's minimum of 2s, not their own 600s.
	forced := newPod("forced", busybox("main", "sh", "-c", `trap "" TERM; while true; do sleep 1; done`))
	forced.Spec.TerminationGracePeriodSeconds = &long
	p = ta.create(t, forced)
	ta.waitPod(t, "default", "forced", 30*time.Second, running)
	zero := int64(0)
	if _, gone, err := ta.registry().DeletePod(context.Background(), "default", "forced", &zero, nil); err != nil || !gone {
		t.Fatalf("forced deletion: gone %v, %v", gone, err)
	}
	ta.waitGone(t, "default", "forced", string(p.UID), 30*time.Second)
}

// Deleting a namespace marks it Terminating, deletes its pods, then the namespace.
func TestNamespaceDeletion(t *testing.T) {
	ta := startAgent(t, "node")
	ctx := context.Background()
	if _, err := ta.registry().CreateNamespace(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}); err != nil {
		t.Fatal(err)
	}
	pod := newPod("worker", busybox("main", "sleep", "3600"))
	pod.Namespace = "team"
	p := ta.create(t, pod)
	ta.waitPod(t, "team", "worker", 30*time.Second, running)

	ns, err := ta.registry().DeleteNamespace(ctx, "team", nil)
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("delete namespace: %v, phase %v; want Terminating", err, ns)
	}
	ta.waitGone(t, "team", "worker", string(p.UID), 30*time.Second)
	testenv.Eventually(t, 30*time.Second, func() error {
		if _, err := ta.store().Get(ctx, store.Namespaces, "", "team"); err == nil {
			return fmt.Errorf("namespace team still exists")
		}
		return nil
	})
	if _, err := ta.registry().DeleteNamespace(ctx, "default", nil); err == nil {
		t.Error("deleting namespace default was allowed")
	}
}

// Acceptance 5 (the agent's part): an image that does not exist shows ErrImagePull, then
// ImagePullBackOff; an absent image under Never shows ErrImageNeverPull.
func TestImageErrors(t *testing.T) {
	ta := startAgent(t, "node")
	reg := testenv.StartRegistry(t)
	missing := newPod("missing", corev1.Container{Name: "main", Image: reg.Addr + "/nope:1.0"})
	never := newPod("never", corev1.Container{Name: "main", Image: reg.Addr + "/nope:1.0", ImagePullPolicy: corev1.PullNever})
	fromRV := ta.store().ResourceVersion()
	ta.create(t, missing)
	ta.create(t, never)
	waiting := func(reason string) func(p *corev1.Pod) error {
		return func(p *corev1.Pod) error {
			w := containerStatus(p, "main").State.Waiting
			if w == nil || w.Reason != reason || p.Status.Phase != corev1.PodPending {
				return fmt.Errorf("phase %s, %s; want Pending, waiting %s", p.Status.Phase, describeContainers(p), reason)
			}
			return nil
		}
	}
	p := ta.waitPodSince(t, "default", "missing", fromRV, 30*time.Second, waiting("ErrImagePull"))
	if w := containerStatus(p, "main").State.Waiting; !strings.Contains(w.Message, "nope") {
		t.Errorf("ErrImagePull message %q does not name the image", w.Message)
	}
	ta.waitPodSince(t, "default", "missing", p.ResourceVersion, 30*time.Second, waiting("ImagePullBackOff"))
	ta.waitPodSince(t, "default", "never", fromRV, 30*time.Second, waiting("ErrImageNeverPull"))
}
