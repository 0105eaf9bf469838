package source

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/internal/keys"
)

// pods decodes a manifest for the update tests.
func pods(t *testing.T, origin string, names ...string) []*corev1.Pod {
	t.Helper()
	var docs []string
	for _, n := range names {
		docs = append(docs, podManifest(n, "img-"+origin))
	}
	out, err := decodePods([]byte(strings.Join(docs, "---\n")), SourceFile, origin, "n")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildUpdate(t *testing.T) {
	cases := []struct {
		name      string
		parts     func(t *testing.T) []part
		wantPods  string            // namespace/name, sorted
		wantImage map[string]string // pod name -> image: which duplicate won
		wantErrs  map[string]string // origin -> part of the error message
	}{
		{
			name:     "sorted by namespace/name",
			parts:    func(t *testing.T) []part { return []part{{origin: "a", pods: pods(t, "a", "z", "b")}} },
			wantPods: "default/b-n,default/z-n",
		},
		{
			name: "duplicate across files: the first file wins",
			parts: func(t *testing.T) []part {
				return []part{{origin: "a", pods: pods(t, "a", "x")}, {origin: "b", pods: pods(t, "b", "x", "w")}}
			},
			wantPods:  "default/w-n,default/x-n",
			wantImage: map[string]string{"x-n": "img-a"},
			wantErrs:  map[string]string{"b": "pod default/x-n in b: already defined in a, ignored"},
		},
		{
			name:      "duplicate in one file: the first document wins",
			parts:     func(t *testing.T) []part { return []part{{origin: "a", pods: pods(t, "a", "x", "x")}} },
			wantPods:  "default/x-n",
			wantErrs:  map[string]string{"a": "pod default/x-n in a: already defined in a"},
			wantImage: map[string]string{"x-n": "img-a"},
		},
		{
			name: "a part's own error joins its duplicates",
			parts: func(t *testing.T) []part {
				return []part{{origin: "a", pods: pods(t, "a", "x")}, {origin: "b", pods: pods(t, "b", "x"), err: errors.New("broken")}}
			},
			wantPods: "default/x-n",
			wantErrs: map[string]string{"b": "broken\npod default/x-n in b"},
		},
		{
			name:     "error without pods",
			parts:    func(t *testing.T) []part { return []part{{origin: "a", err: errors.New("broken")}} },
			wantErrs: map[string]string{"a": "broken"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := buildUpdate(SourceFile, tc.parts(t))
			if u.Source != SourceFile {
				t.Errorf("source %q", u.Source)
			}
			if got := podNames(u); got != tc.wantPods {
				t.Errorf("pods %q, want %q", got, tc.wantPods)
			}
			for name, image := range tc.wantImage {
				if got := podImage(u, "default", name); got != image {
					t.Errorf("pod %s has image %q, want %q", name, got, image)
				}
			}
			if len(u.Errs) != len(tc.wantErrs) {
				t.Errorf("errs %v, want %v", u.Errs, tc.wantErrs)
			}
			for origin, want := range tc.wantErrs {
				if err := u.Errs[origin]; err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("errs[%s] = %v, want one containing %q", origin, err, want)
				}
			}
		})
	}
}

func TestBuildUpdateCopiesPods(t *testing.T) {
	p := pods(t, "a", "x")
	u := buildUpdate(SourceFile, []part{{origin: "a", pods: p}})
	u.Pods[0].Spec.Containers[0].Image = "changed by a receiver"
	if p[0].Spec.Containers[0].Image != "img-a" {
		t.Fatal("a receiver's change reached the source's state")
	}
}

func TestUpdateSameAs(t *testing.T) {
	base := func(t *testing.T) Update {
		return buildUpdate(SourceFile, []part{{origin: "a", pods: pods(t, "a", "x")}, {origin: "b", err: errors.New("e")}})
	}
	cases := []struct {
		name   string
		change func(t *testing.T, u *Update)
		same   bool
	}{
		{"identical", func(*testing.T, *Update) {}, true},
		{"other source", func(_ *testing.T, u *Update) { u.Source = SourceHTTP }, false},
		{"pod content changed", func(_ *testing.T, u *Update) { u.Pods[0].Annotations[keys.ConfigHashAnnotation] = "other" }, false},
		{"pod added", func(t *testing.T, u *Update) { u.Pods = append(u.Pods, pods(t, "c", "w")...) }, false},
		{"pod removed", func(_ *testing.T, u *Update) { u.Pods = nil }, false},
		{"error message changed", func(_ *testing.T, u *Update) { u.Errs["b"] = errors.New("f") }, false},
		{"same error message, another value", func(_ *testing.T, u *Update) { u.Errs["b"] = errors.New("e") }, true},
		{"error cleared", func(_ *testing.T, u *Update) { delete(u.Errs, "b") }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := base(t)
			tc.change(t, &u)
			if got := base(t).sameAs(u); got != tc.same {
				t.Errorf("sameAs = %v, want %v", got, tc.same)
			}
		})
	}
}

func TestSenderSkipsRepeatsAndStopsWithContext(t *testing.T) {
	out := make(chan Update, 3)
	s := sender{out: out}
	ctx := context.Background()
	empty := buildUpdate(SourceFile, nil)
	for range 2 {
		if err := s.send(ctx, empty); err != nil {
			t.Fatal(err)
		}
	}
	if len(out) != 1 {
		t.Fatalf("%d updates sent, want the first one only", len(out))
	}
	if err := s.send(ctx, buildUpdate(SourceFile, []part{{origin: "a", err: errors.New("e")}})); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d updates sent, want a second one for the change", len(out))
	}

	// Nobody reads: the send must give up when ctx ends.
	blocked := sender{out: make(chan Update)}
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := blocked.send(ctx, empty); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send to nobody: %v, want the context's error", err)
	}
}

func TestSenderIgnoresReceiverChanges(t *testing.T) {
	out := make(chan Update, 2)
	s := sender{out: out}
	ctx := context.Background()
	build := func() Update { return buildUpdate(SourceFile, []part{{origin: "a", pods: pods(t, "a", "x")}}) }
	if err := s.send(ctx, build()); err != nil {
		t.Fatal(err)
	}
	// The receiver changes what it got; the same content must still count as already sent.
	got := <-out
	got.Pods[0].Annotations[keys.ConfigHashAnnotation] = "changed by the receiver"
	got.Pods = nil
	if err := s.send(ctx, build()); err != nil {
		t.Fatal(err)
	}
	if len(out) != 0 {
		t.Fatal("an unchanged update was sent again after the receiver changed its copy")
	}
}
