package source

import "time"

// debouncer turns a burst of file events into one rescan. An editor's save is several events
// (create a temporary file, write it in pieces, rename it into place), and reading between them
// would see a half-written file: waiting for quiet avoids most such reads. A steady stream of
// events must not postpone the rescan forever, so it fires at most maxDelay after the burst's
// first event.
type debouncer struct {
	quiet    time.Duration
	maxDelay time.Duration

	timer *time.Timer
	first time.Time // first event of the pending burst; zero when none is pending
}

func newDebouncer(quiet, maxDelay time.Duration) *debouncer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &debouncer{quiet: quiet, maxDelay: maxDelay, timer: t}
}

// event records an event that happened at now: the timer fires after quiet without another
// event, or at first+maxDelay, whichever is sooner.
func (d *debouncer) event(now time.Time) {
	if d.first.IsZero() {
		d.first = now
	}
	wait := min(d.quiet, d.first.Add(d.maxDelay).Sub(now))
	d.timer.Reset(max(wait, 0))
}

// C fires when the pending burst is over; the receiver must then call fired.
func (d *debouncer) C() <-chan time.Time { return d.timer.C }

// fired starts a new burst.
func (d *debouncer) fired() { d.first = time.Time{} }

func (d *debouncer) stop() { d.timer.Stop() }
