package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/apiserver/store"
)

// The heartbeat moves every condition's heartbeat time and no transition time; a restart (the
// node registered again) keeps the transition times of conditions that did not change.
func TestNodeHeartbeat(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &Agent{cfg: Config{NodeName: "n1"}, store: st}
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
	n, err := a.node(ctx)
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
	if _, err := st.GuaranteedUpdate(ctx, store.Nodes, "", "n1", func(cur store.Object) (store.Object, error) {
		n := cur.(*corev1.Node)
		for i := range n.Status.Conditions {
			n.Status.Conditions[i].LastTransitionTime = since
		}
		return n, nil
	}); err != nil {
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
