package store

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
)

// Event is one change to a stored object. Object is the state after the
// change (for DELETED, the last state with the deletion's resourceVersion).
// Each watcher receives its own copy.
type Event struct {
	Type   watch.EventType
	Object Object
	// Prev is the object before a Modified event: a watch filtered by selectors needs it to tell
	// an object that leaves the selection (sent as Deleted, as the apiserver's cacher does) from one
	// that was never in it.
	Prev Object
}

// ringEntry is a published event plus what watches filter on.
type ringEntry struct {
	rv        uint64
	resource  string
	namespace string
	ev        Event
}

// ring keeps the last len(buf) events so a watch can resume from a recent
// resourceVersion without a re-list. Every write produces exactly one event
// with RV = previous RV + 1, so the ring holds a contiguous RV range and
// "all events after RV x" are available iff x >= base.
type ring struct {
	buf   []ringEntry
	start int    // index of the oldest entry
	n     int    // number of entries
	base  uint64 // every event with rv > base is in the ring
}

// newRing starts empty at the store's current RV: after a restart nothing
// older can be replayed, but resuming from exactly that RV misses nothing.
func newRing(size int, rv uint64) *ring {
	return &ring{buf: make([]ringEntry, size), base: rv}
}

func (r *ring) add(e ringEntry) {
	if r.n == len(r.buf) {
		r.base = r.buf[r.start].rv
		r.start = (r.start + 1) % len(r.buf)
		r.n--
	}
	r.buf[(r.start+r.n)%len(r.buf)] = e
	r.n++
}

// after returns the entries with rv > from, oldest first.
func (r *ring) after(from uint64) []ringEntry {
	var out []ringEntry
	for i := 0; i < r.n; i++ {
		if e := r.buf[(r.start+i)%len(r.buf)]; e.rv > from {
			out = append(out, e)
		}
	}
	return out
}

type watcher struct {
	resource  string
	namespace string // "" = all
	ch        chan Event
	done      chan struct{} // closed when the watch ends, releases its ctx goroutine
}

func (w *watcher) matches(e ringEntry) bool {
	return e.resource == w.resource && (w.namespace == "" || w.namespace == e.namespace)
}

// Watch streams changes to resource in namespace ("" = all) after fromRV.
// fromRV "" or "0" streams only future events (callers List first and
// normally pass the list's RV). A fromRV older than the retained history
// fails with ResourceExpired (410 Gone): the caller must re-list.
//
// The channel is closed when ctx ends, when the store closes, or when the
// watcher falls more than its buffer behind: writers never block on a slow
// reader and never drop its events silently, so a closed channel always
// means "re-list and watch again".
func (s *Store) Watch(ctx context.Context, resource, namespace, fromRV string) (<-chan Event, error) {
	ri, namespace, err := resolve(ctx, resource, namespace)
	if err != nil {
		return nil, err
	}
	var from uint64
	if fromRV != "" {
		if from, err = parseRV(fromRV); err != nil {
			return nil, fmt.Errorf("watch %s: %w", ri.gr, err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("watch %s: store is closed", ri.gr)
	}
	w := &watcher{resource: resource, namespace: namespace, done: make(chan struct{})}
	var replay []ringEntry
	switch {
	case from == 0:
	case from > s.rv:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("watch %s: resource version %d is newer than the store's %d", ri.gr, from, s.rv))
	case from < s.ring.base:
		return nil, apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", from, s.ring.base))
	default:
		for _, e := range s.ring.after(from) {
			if w.matches(e) {
				replay = append(replay, e)
			}
		}
	}
	// Replay and registration happen under s.mu, the lock writers hold
	// while appending to the ring, so no event falls between the two.
	w.ch = make(chan Event, s.watchBuffer+len(replay))
	for _, e := range replay {
		w.ch <- copyEvent(e.ev)
	}
	s.watchers[w] = struct{}{}

	go func() {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.stopLocked(w)
			s.mu.Unlock()
		case <-w.done:
		}
	}()
	return w.ch, nil
}

// publishLocked appends an event to the ring and hands it to every matching
// watcher without blocking. Caller holds s.mu.
func (s *Store) publishLocked(rv uint64, resource, namespace string, ev Event) {
	e := ringEntry{rv: rv, resource: resource, namespace: namespace, ev: ev}
	s.ring.add(e)
	for w := range s.watchers {
		if !w.matches(e) {
			continue
		}
		select {
		case w.ch <- copyEvent(ev):
		default:
			s.stopLocked(w) // overflow: end the watch rather than lose events
		}
	}
}

// stopLocked ends a watch once. Caller holds s.mu; channels are only sent
// on and closed under s.mu, so no send can hit a closed channel.
func (s *Store) stopLocked(w *watcher) {
	if _, ok := s.watchers[w]; !ok {
		return
	}
	delete(s.watchers, w)
	close(w.ch)
	close(w.done)
}

func copyEvent(ev Event) Event {
	out := Event{Type: ev.Type, Object: ev.Object.DeepCopyObject().(Object)}
	if ev.Prev != nil {
		out.Prev = ev.Prev.DeepCopyObject().(Object)
	}
	return out
}
