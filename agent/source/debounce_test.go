package source

import (
	"testing"
	"time"
)

func TestDebouncerCoalescesABurst(t *testing.T) {
	d := newDebouncer(50*time.Millisecond, time.Hour)
	defer d.stop()
	start := time.Now()
	for range 5 {
		d.event(time.Now())
	}
	select {
	case <-d.C():
		d.fired()
	case <-time.After(waitTimeout):
		t.Fatal("the burst never fired")
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("fired after %v, before the quiet period", waited)
	}
	select {
	case <-d.C():
		t.Fatal("one burst fired twice")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestDebouncerFiresDuringASteadyStream(t *testing.T) {
	// Events every 10ms never leave 50ms of quiet: only maxDelay makes it fire while they go on.
	d := newDebouncer(50*time.Millisecond, 200*time.Millisecond)
	defer d.stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	streamEnd := time.After(waitTimeout)
	d.event(time.Now())
	for {
		select {
		case <-d.C():
			return
		case now := <-tick.C:
			d.event(now)
		case <-streamEnd:
			t.Fatal("a steady stream of events postponed the rescan until it stopped")
		}
	}
}

func TestDebouncerPastMaxDelayFiresAtOnce(t *testing.T) {
	// A burst whose first event is older than maxDelay (the loop was busy sending) fires now.
	d := newDebouncer(time.Hour, 100*time.Millisecond)
	defer d.stop()
	d.event(time.Now().Add(-time.Second))
	d.event(time.Now())
	select {
	case <-d.C():
	case <-time.After(waitTimeout):
		t.Fatal("an overdue burst did not fire")
	}
}
