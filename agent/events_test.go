package agent

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// Events list in the order they happened (their names sort by time, as the kubelet's), and an
// event that happens again counts up on its Event instead of adding one.
func TestEventOrderAndCount(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	a := &Agent{cfg: Config{NodeName: "n1"}, client: client}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", UID: "u1"}}
	reasons := []string{"Scheduled", "Pulling", "Pulled", "Created", "Started", "BackOff", "Killing"}
	for _, r := range reasons {
		a.event(ctx, pod, "c", corev1.EventTypeNormal, r, r+" message")
	}
	a.event(ctx, pod, "c", corev1.EventTypeNormal, "BackOff", "BackOff message")

	list, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The API lists by name.
	slices.SortFunc(list.Items, func(a, b corev1.Event) int { return strings.Compare(a.Name, b.Name) })
	var got []string
	count := map[string]int32{}
	for _, e := range list.Items {
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
