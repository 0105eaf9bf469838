package runtime

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// cleanupTimeout bounds how long undoing a failed step may take.
const cleanupTimeout = time.Minute

// undoStack collects the undo of each step as soon as the step succeeds, and runs them in reverse
// when a later step fails.
type undoStack []func(context.Context) error

func (u *undoStack) push(f func(context.Context) error) { *u = append(*u, f) }

// run undoes everything with a fresh context: the caller's may be what was cancelled, and a
// cancelled request must still clean up.
func (u *undoStack) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	for i := len(*u) - 1; i >= 0; i-- {
		if err := (*u)[i](ctx); err != nil {
			slog.Warn("cleanup after failure", "err", err)
			errs = append(errs, err)
		}
	}
	*u = nil
	return errors.Join(errs...)
}
