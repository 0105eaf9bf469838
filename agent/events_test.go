package agent

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podagent/podagent/apiserver/store"
)

// Events list in the order they happened (their names sort by time, as the kubelet's), and an
// event that happens again counts up on its Event instead of adding one.
func TestEventOrderAndCount(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := &Agent{cfg: Config{NodeName: "n1"}, store: st}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", UID: "u1"}}
	reasons := []string{"Scheduled", "Pulling", "Pulled", "Created", "Started", "BackOff", "Killing"}
	for _, r := range reasons {
		a.event(ctx, pod, "c", corev1.EventTypeNormal, r, r+" message", "")
	}
	a.event(ctx, pod, "c", corev1.EventTypeNormal, "BackOff", "BackOff message", "")

	objs, _, err := st.List(ctx, store.Events, "default")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	count := map[string]int32{}
	for _, o := range objs {
		e := o.(*corev1.Event)
		got = append(got, e.Reason)
		count[e.Reason] = e.Count
	}
	if !slices.Equal(got, reasons) {
		t.Errorf("events listed as %v, want the order they happened: %v", got, reasons)
	}
	if count["BackOff"] != 2 || count["Started"] != 1 {
		t.Errorf("counts %v: want BackOff 2 on one Event, Started 1", count)
	}
}
