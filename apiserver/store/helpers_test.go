package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testOptions() options {
	return options{lockTimeout: 100 * time.Millisecond, ringSize: defaultRingSize, watchBuffer: defaultWatchBuffer}
}

// openTest opens a store in a temp dir and closes it at test end.
func openTest(t *testing.T, o options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := open(path, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func mustCreate(t *testing.T, s *Store, resource string, obj Object) Object {
	t.Helper()
	out, err := s.Create(context.Background(), resource, obj)
	if err != nil {
		t.Fatalf("create %s %s: %v", resource, obj.GetName(), err)
	}
	return out
}

func node(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
