package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

// collect reads n events or fails at the deadline.
func collect(t *testing.T, ch <-chan Event, n int) []Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	var out []Event
	for len(out) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d events", len(out), n)
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("timed out after %d of %d events", len(out), n)
		}
	}
	return out
}

func rvOf(t *testing.T, ev Event) uint64 {
	t.Helper()
	rv, err := strconv.ParseUint(ev.Object.GetResourceVersion(), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

// expectClosed waits for the channel to be closed, draining what is left.
func expectClosed(t *testing.T, ch <-chan Event) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	n := 0
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return n
			}
			n++
		case <-deadline:
			t.Fatal("channel not closed")
		}
	}
}

func TestWatchReplayFromMidRing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := openTest(t, testOptions())
	for i := 0; i < 10; i++ {
		mustCreate(t, s, Pods, pod("default", fmt.Sprint("p", i)))
	}
	if _, err := s.Delete(ctx, Pods, "default", "p0", nil); err != nil { // rv 11
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, Pods, "", "5")
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, Pods, pod("default", "live")) // rv 12, after the watch started
	evs := collect(t, ch, 7)
	for i, ev := range evs {
		if want := uint64(6 + i); rvOf(t, ev) != want {
			t.Fatalf("event %d has rv %d, want %d", i, rvOf(t, ev), want)
		}
	}
	if evs[0].Type != watch.Added || evs[0].Object.GetName() != "p5" ||
		evs[5].Type != watch.Deleted || evs[5].Object.GetName() != "p0" ||
		evs[6].Type != watch.Added || evs[6].Object.GetName() != "live" {
		t.Errorf("unexpected events: %v %v %v", evs[0].Type, evs[5].Type, evs[6].Type)
	}
	select {
	case ev := <-ch:
		t.Fatalf("unexpected extra event rv %d", rvOf(t, ev))
	default:
	}
	cancel()
	if n := expectClosed(t, ch); n != 0 {
		t.Errorf("%d events after cancel", n)
	}
}

func TestWatchFilters(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, testOptions())
	mustCreate(t, s, Pods, pod("a", "p1"))
	mustCreate(t, s, Pods, pod("b", "p2"))
	for _, tc := range []struct {
		resource, ns, fromRV string
		want                 []string
	}{
		{Pods, "a", "0", []string{"p4"}},       // "0": only new events
		{Pods, "", "", []string{"p4", "p5"}},   // "": only new events
		{Pods, "b", "1", []string{"p2", "p5"}}, // replay + live, namespace b only
		{Nodes, "", "1", []string{"n3"}},
	} {
		t.Run(tc.resource+"/"+tc.ns+"@"+tc.fromRV, func(t *testing.T) {
			s, _ := openTest(t, testOptions())
			mustCreate(t, s, Pods, pod("a", "p1"))
			mustCreate(t, s, Pods, pod("b", "p2"))
			ch, err := s.Watch(ctx, tc.resource, tc.ns, tc.fromRV)
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, Nodes, node("n3"))
			mustCreate(t, s, Pods, pod("a", "p4"))
			mustCreate(t, s, Pods, pod("b", "p5"))
			s.Close() // ends the watch, so extra events would show up below
			var got []string
			for ev := range ch {
				got = append(got, ev.Object.GetName())
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := s.Watch(ctx, Pods, "", "99"); !apierrors.IsBadRequest(err) {
		t.Errorf("future rv: want BadRequest, got %v", err)
	}
	if _, err := s.Watch(ctx, Pods, "", "abc"); !apierrors.IsBadRequest(err) {
		t.Errorf("garbage rv: want BadRequest, got %v", err)
	}
}

func TestWatchConcurrentWritersExactlyOnce(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	o.watchBuffer = 1000 // this test is about ordering, not overflow
	s, _ := openTest(t, o)
	const writers, perWriter = 4, 50
	midway := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if w == 0 && i == perWriter/4 {
					close(midway)
				}
				if _, err := s.Create(ctx, Pods, pod("default", fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	<-midway
	// Writes keep racing between reading the RV and registering the watch:
	// those must come from the replay, later ones live, none twice.
	from, _ := strconv.ParseUint(s.ResourceVersion(), 10, 64)
	ch, err := s.Watch(ctx, Pods, "", strconv.FormatUint(from, 10))
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	const total = writers * perWriter
	evs := collect(t, ch, total-int(from))
	for i, ev := range evs {
		if want := from + 1 + uint64(i); rvOf(t, ev) != want {
			t.Fatalf("event %d: rv %d, want %d", i, rvOf(t, ev), want)
		}
	}
	select {
	case ev := <-ch:
		t.Fatalf("extra event rv %d", rvOf(t, ev))
	default:
	}
}

func TestWatchTooOld(t *testing.T) {
	ctx := context.Background()
	t.Run("after reopen", func(t *testing.T) {
		s, path := openTest(t, testOptions())
		for i := 0; i < 3; i++ {
			mustCreate(t, s, Pods, pod("default", fmt.Sprint("p", i)))
		}
		s.Close()
		s2, err := open(path, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		for _, rv := range []string{"1", "2"} {
			_, err := s2.Watch(ctx, Pods, "", rv)
			// 410 with reason Expired, as the apiserver sends; reflectors re-list on it.
			if !apierrors.IsResourceExpired(err) || apierrors.ReasonForError(err) != "Expired" ||
				err.(apierrors.APIStatus).Status().Code != 410 {
				t.Errorf("watch from %s: want ResourceExpired (410), got %v", rv, err)
			}
		}
		// The current RV is still valid: nothing after it was missed.
		ch, err := s2.Watch(ctx, Pods, "", "3")
		if err != nil {
			t.Fatal(err)
		}
		mustCreate(t, s2, Pods, pod("default", "new"))
		if ev := collect(t, ch, 1)[0]; rvOf(t, ev) != 4 {
			t.Errorf("got rv %d, want 4", rvOf(t, ev))
		}
	})
	t.Run("evicted from ring", func(t *testing.T) {
		o := testOptions()
		o.ringSize = 5
		s, _ := openTest(t, o)
		for i := 0; i < 10; i++ {
			mustCreate(t, s, Pods, pod("default", fmt.Sprint("p", i)))
		}
		if _, err := s.Watch(ctx, Pods, "", "4"); !apierrors.IsResourceExpired(err) {
			t.Errorf("rv 4: want ResourceExpired, got %v", err)
		}
		ch, err := s.Watch(ctx, Pods, "", "5") // ring holds 6..10
		if err != nil {
			t.Fatal(err)
		}
		if evs := collect(t, ch, 5); rvOf(t, evs[0]) != 6 || rvOf(t, evs[4]) != 10 {
			t.Errorf("replay from 5: got rv %d..%d", rvOf(t, evs[0]), rvOf(t, evs[4]))
		}
	})
}

func TestSlowWatcherOverflowCloses(t *testing.T) {
	ctx := context.Background()
	o := testOptions()
	o.watchBuffer = 5
	s, _ := openTest(t, o)
	slow, err := s.Watch(ctx, Pods, "", "")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Watch(ctx, Pods, "", "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	// The fast watcher reads each event before the next write, so it keeps up
	// however loaded the machine is, and sees everything; the writes go on
	// although nobody reads the slow watcher.
	for i := 0; i < n; i++ {
		mustCreate(t, s, Pods, pod("default", fmt.Sprint("p", i)))
		collect(t, fast, 1)
	}
	// The slow watcher got exactly its buffer, then a close: the signal to
	// re-list, never a silent gap.
	got := 0
	for ev := range slow {
		if want := uint64(got + 1); rvOf(t, ev) != want {
			t.Fatalf("slow watcher event rv %d, want %d", rvOf(t, ev), want)
		}
		got++
	}
	if got != o.watchBuffer {
		t.Errorf("slow watcher received %d events before close, want %d", got, o.watchBuffer)
	}
}

func TestWatchEventsAreCopies(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t, testOptions())
	a, _ := s.Watch(ctx, Pods, "", "")
	b, _ := s.Watch(ctx, Pods, "", "")
	mustCreate(t, s, Pods, pod("default", "p"))
	ea, eb := collect(t, a, 1)[0], collect(t, b, 1)[0]
	ea.Object.SetName("mutated")
	if eb.Object.GetName() != "p" {
		t.Fatal("watchers share event objects")
	}
}
