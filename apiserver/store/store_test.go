package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestCRUDPerResource(t *testing.T) {
	tests := []struct {
		resource  string
		namespace string
		kind      string
		newObj    func() Object
		mutate    func(Object) // changes spec
	}{
		{Pods, "default", "Pod", func() Object { return pod("default", "p1") },
			func(o Object) { o.(*corev1.Pod).Spec.Containers[0].Image = "nginx" }},
		{Namespaces, "", "Namespace", func() Object { return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1"}} },
			func(o Object) { o.(*corev1.Namespace).Spec.Finalizers = []corev1.FinalizerName{"kubernetes"} }},
		{Nodes, "", "Node", func() Object { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}} },
			func(o Object) { o.(*corev1.Node).Spec.Unschedulable = true }},
	}
	for _, tc := range tests {
		t.Run(tc.resource, func(t *testing.T) {
			ctx := context.Background()
			s, _ := openTest(t, testOptions())
			in := tc.newObj()
			created, err := s.Create(ctx, tc.resource, in)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if in.GetUID() != "" || in.GetResourceVersion() != "" {
				t.Errorf("Create modified its argument")
			}
			if created.GetUID() == "" || created.GetGeneration() != 1 || created.GetResourceVersion() != "1" {
				t.Errorf("created meta: uid=%q gen=%d rv=%q", created.GetUID(), created.GetGeneration(), created.GetResourceVersion())
			}
			if ts := created.GetCreationTimestamp(); ts.IsZero() || ts.Nanosecond() != 0 {
				t.Errorf("creationTimestamp %v: want non-zero, second precision", ts)
			}
			if gvk := created.GetObjectKind().GroupVersionKind(); gvk.Kind != tc.kind || gvk.Version != "v1" {
				t.Errorf("gvk = %v", gvk)
			}
			if _, err := s.Create(ctx, tc.resource, tc.newObj()); !apierrors.IsAlreadyExists(err) {
				t.Errorf("second create: want AlreadyExists, got %v", err)
			}

			got, err := s.Get(ctx, tc.resource, tc.namespace, in.GetName())
			if err != nil || got.GetUID() != created.GetUID() || got.GetResourceVersion() != "1" {
				t.Fatalf("get: %v %v", got, err)
			}
			if !got.GetCreationTimestamp().Time.Equal(created.GetCreationTimestamp().Time) {
				t.Errorf("creationTimestamp changed across get")
			}

			items, listRV, err := s.List(ctx, tc.resource, "")
			if err != nil || len(items) != 1 || listRV != "1" {
				t.Fatalf("list: %d items rv=%q err=%v", len(items), listRV, err)
			}

			// Stale resourceVersion: conflict with the apiserver's message.
			stale := got.DeepCopyObject().(Object)
			stale.SetResourceVersion("999")
			tc.mutate(stale)
			_, err = s.Update(ctx, tc.resource, stale, nil)
			if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "the object has been modified; please apply your changes to the latest version and try again") {
				t.Fatalf("stale update: want Conflict, got %v", err)
			}

			upd := got.DeepCopyObject().(Object)
			tc.mutate(upd)
			upd.SetUID("") // uid is kept from the stored object
			updated, err := s.Update(ctx, tc.resource, upd, nil)
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if updated.GetResourceVersion() != "2" || updated.GetGeneration() != 2 || updated.GetUID() != created.GetUID() ||
				!updated.GetCreationTimestamp().Time.Equal(created.GetCreationTimestamp().Time) {
				t.Errorf("updated meta: rv=%q gen=%d uid=%q", updated.GetResourceVersion(), updated.GetGeneration(), updated.GetUID())
			}

			wrongUID := types.UID("nope")
			if _, err := s.Delete(ctx, tc.resource, tc.namespace, in.GetName(), &metav1.Preconditions{UID: &wrongUID}); !apierrors.IsConflict(err) {
				t.Errorf("delete with wrong uid: want Conflict, got %v", err)
			}
			uid := created.GetUID()
			deleted, err := s.Delete(ctx, tc.resource, tc.namespace, in.GetName(), &metav1.Preconditions{UID: &uid})
			if err != nil || deleted.GetUID() != uid || deleted.GetResourceVersion() != "3" {
				t.Fatalf("delete: %v %v", deleted, err)
			}
			_, err = s.Get(ctx, tc.resource, tc.namespace, in.GetName())
			if !apierrors.IsNotFound(err) {
				t.Fatalf("get after delete: want NotFound, got %v", err)
			}
			if d := err.(apierrors.APIStatus).Status().Details; d == nil || d.Kind != tc.resource || d.Group != "" {
				t.Errorf("NotFound details = %+v, want resource %q", d, tc.resource)
			}
			if _, err := s.Delete(ctx, tc.resource, tc.namespace, in.GetName(), nil); !apierrors.IsNotFound(err) {
				t.Errorf("second delete: want NotFound, got %v", err)
			}
			if _, err := s.Update(ctx, tc.resource, upd, nil); !apierrors.IsNotFound(err) {
				t.Errorf("update of deleted: want NotFound, got %v", err)
			}
		})
	}
}

func TestListNamespaceFilter(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, testOptions())
	mustCreate(t, s, Pods, pod("a", "p1"))
	mustCreate(t, s, Pods, pod("a", "p2"))
	mustCreate(t, s, Pods, pod("ab", "p3")) // prefix of "a/" must not match "ab/"
	mustCreate(t, s, Pods, pod("b", "p4"))
	for _, tc := range []struct {
		ns   string
		want int
	}{{"", 4}, {"a", 2}, {"ab", 1}, {"b", 1}, {"c", 0}} {
		items, rv, err := s.List(ctx, Pods, tc.ns)
		if err != nil || len(items) != tc.want || rv != "4" {
			t.Errorf("list ns=%q: %d items rv=%q err=%v, want %d", tc.ns, len(items), rv, err, tc.want)
		}
	}
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, testOptions())
	withRV := pod("default", "x")
	withRV.ResourceVersion = "5"
	for name, tc := range map[string]struct {
		resource string
		obj      Object
	}{
		"wrong type":               {Pods, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}},
		"unknown resource":         {"secrets", pod("default", "x")},
		"no name":                  {Pods, pod("default", "")},
		"pod without namespace":    {Pods, pod("", "x")},
		"node with namespace":      {Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: "x"}}},
		"slash in name":            {Pods, pod("default", "a/b")},
		"resourceVersion on input": {Pods, withRV},
	} {
		if _, err := s.Create(ctx, tc.resource, tc.obj); !apierrors.IsBadRequest(err) {
			t.Errorf("%s: want BadRequest, got %v", name, err)
		}
	}
}

func TestGenerationOnlyOnSpecChange(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, testOptions())
	cur := mustCreate(t, s, Pods, pod("default", "p"))
	steps := []struct {
		name    string
		mutate  func(*corev1.Pod)
		wantGen int64
		wantRV  string
	}{
		{"label", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, 1, "2"},
		{"status", func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, 1, "3"},
		{"spec", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx" }, 2, "4"},
		{"no-op", func(p *corev1.Pod) {}, 2, "4"}, // not written at all
		{"spec again", func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }, 3, "5"},
		{"caller generation ignored", func(p *corev1.Pod) { p.Generation = 42 }, 3, "5"},
	}
	for _, st := range steps {
		p := cur.DeepCopyObject().(*corev1.Pod)
		st.mutate(p)
		out, err := s.Update(ctx, Pods, p, nil)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if out.GetGeneration() != st.wantGen || out.GetResourceVersion() != st.wantRV {
			t.Errorf("%s: gen=%d rv=%s, want gen=%d rv=%s", st.name, out.GetGeneration(), out.GetResourceVersion(), st.wantGen, st.wantRV)
		}
		cur = out
	}
}

func TestResourceVersionMonotonicAcrossReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t, testOptions())
	mustCreate(t, s, Pods, pod("default", "a"))
	last := mustCreate(t, s, Pods, pod("default", "b"))
	if _, err := s.Delete(ctx, Pods, "default", "b", nil); err != nil {
		t.Fatal(err)
	}
	before, _ := strconv.ParseUint(s.ResourceVersion(), 10, 64)
	if before != 3 || last.GetResourceVersion() != "2" {
		t.Fatalf("rv before close = %d", before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, Pods, pod("default", "x")); err == nil {
		t.Fatal("create on closed store succeeded")
	}

	s2, err := open(path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	// Deleting the newest object must not let the counter go back either.
	created := mustCreate(t, s2, Pods, pod("default", "c"))
	after, _ := strconv.ParseUint(created.GetResourceVersion(), 10, 64)
	if after <= before {
		t.Fatalf("rv after reopen %d not > %d", after, before)
	}
	if _, rv, _ := s2.List(ctx, Pods, ""); rv != created.GetResourceVersion() {
		t.Errorf("list rv %s != %s", rv, created.GetResourceVersion())
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	_, path := openTest(t, testOptions())
	_, err := open(path, testOptions())
	if !errors.Is(err, bolt.ErrTimeout) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second open: want ErrTimeout naming %s, got %v", path, err)
	}
}

func TestGuaranteedUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, testOptions())
	mustCreate(t, s, Pods, pod("default", "p"))
	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				_, err := s.GuaranteedUpdate(ctx, Pods, "default", "p", func(o Object) (Object, error) {
					n, _ := strconv.Atoi(o.GetAnnotations()["n"])
					o.SetAnnotations(map[string]string{"n": strconv.Itoa(n + 1)})
					return o, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.Get(ctx, Pods, "default", "p")
	if err != nil {
		t.Fatal(err)
	}
	if n := got.GetAnnotations()["n"]; n != fmt.Sprint(workers*perWorker) {
		t.Fatalf("counter = %s, want %d (lost updates)", n, workers*perWorker)
	}

	boom := errors.New("boom")
	if _, err := s.GuaranteedUpdate(ctx, Pods, "default", "p", func(Object) (Object, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("fn error not propagated: %v", err)
	}
	if _, err := s.GuaranteedUpdate(ctx, Pods, "default", "missing", nil); !apierrors.IsNotFound(err) {
		t.Errorf("missing object: want NotFound, got %v", err)
	}
}
