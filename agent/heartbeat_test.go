package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The heartbeat moves every condition's heartbeat time and no transition time; a restart (the
// node registered again) keeps the transition times of conditions that did not change.
func TestNodeHeartbeat(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	a := &Agent{cfg: Config{NodeName: "n1"}, client: client}
	facts := hostFacts{CPUs: 2, MemoryBytes: 1 << 30, OperatingSystem: "linux", Architecture: "amd64"}
	first, err := a.registerNode(ctx, facts)
	if err != nil {
		t.Fatal(err)
	}
	since := first.Status.Conditions[0].LastTransitionTime

	later := time.Now().Add(time.Hour)
	if err := a.reportNodeStatus(ctx, later); err != nil {
		t.Fatal(err)
	}
	n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if !c.LastHeartbeatTime.Time.Equal(later.Truncate(time.Second)) {
			t.Errorf("condition %s: heartbeat %s, want %s", c.Type, c.LastHeartbeatTime, later.Truncate(time.Second))
		}
		if !c.LastTransitionTime.Equal(&since) {
			t.Errorf("condition %s: transition time moved from %s to %s by a heartbeat", c.Type, since, c.LastTransitionTime)
		}
	}

	// The node has been Ready for a day when the agent restarts.
	since = metav1.NewTime(time.Now().Add(-24 * time.Hour).Truncate(time.Second))
	for i := range n.Status.Conditions {
		n.Status.Conditions[i].LastTransitionTime = since
	}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	again, err := a.registerNode(ctx, facts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again.Status.Conditions {
		if !c.LastTransitionTime.Equal(&since) {
			t.Errorf("condition %s after a restart: transition time %s, want %s", c.Type, c.LastTransitionTime, since)
		}
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			t.Errorf("node not Ready after a restart: %+v", c)
		}
	}
}
