package agent_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// A watch list (what client-go's informers ask for first) gets the current objects as ADDED, then
// a bookmark marking their end, then changes: the embedded API answers it as the kube-apiserver
// does, so that informers need no fallback to a list.
func TestWatchList(t *testing.T) {
	ta := startAgent(t, "node")
	ta.create(t, newPod("first", busybox("main", "sleep", "3600")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := ta.n.Client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{
		SendInitialEvents: ptr.To(true), ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks: true, TimeoutSeconds: ptr.To[int64](20)})
	if err != nil {
		t.Fatalf("watch list: %v", err)
	}
	defer w.Stop()
	var got []string
	for ev := range w.ResultChan() {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			t.Fatalf("event %s with %T", ev.Type, ev.Object)
		}
		got = append(got, string(ev.Type)+" "+p.Name)
		if ev.Type == watch.Bookmark {
			if p.Annotations[metav1.InitialEventsAnnotationKey] != "true" || p.ResourceVersion == "" {
				t.Fatalf("bookmark %+v, want the initial-events-end annotation and a resourceVersion", p.ObjectMeta)
			}
			break
		}
	}
	if len(got) != 2 || got[0] != "ADDED first" || got[1] != "BOOKMARK " {
		t.Fatalf("events %q, want ADDED first, then the bookmark", got)
	}
}
