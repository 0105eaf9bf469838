package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// dirQuiet is how long the directory must be quiet before it is read again after a change.
	dirQuiet = 100 * time.Millisecond
	// dirMaxDelay bounds how long a stream of events postpones the read, so that a change is
	// delivered within about a second even while another process keeps writing.
	dirMaxDelay = 500 * time.Millisecond
)

// WatchDir sends an Update for dir when it starts, within about one second of any change to a file
// in it (create, write, rename, remove; an editor's write-to-temp-then-rename included), and every
// resync period; it sends only when the set of pods or errors changed since the last Update (the
// first Update is always sent, even if empty). A dir that does not exist yet is fine: it yields an
// empty set and is picked up when it appears (watch its parent or retry at resync). Returns when
// ctx ends; sends must also stop blocking when ctx ends.
//
// A file whose content cannot be read or decoded keeps the pods it last defined, and its error is
// in Errs[path]; so does a file that held pods and is now empty (a writer truncated it and has
// not written yet). Removing the file removes its pods. A directory that exists but cannot be
// read keeps every pod, with the error in Errs[dir]. WatchDir returns nil when ctx ends, and an
// error only when it cannot watch at all.
func WatchDir(ctx context.Context, dir, nodeName string, resync time.Duration, out chan<- Update) error {
	if resync <= 0 {
		return fmt.Errorf("watch manifest directory %s: resync period %v must be positive", dir, resync)
	}
	dir = filepath.Clean(dir)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch manifest directory %s: %w", dir, err)
	}
	defer w.Close()
	dw := &dirWatcher{w: w, dir: dir, parent: filepath.Dir(dir)}
	// Watch before the first read, so that a change made while reading is not missed.
	dw.ensureWatches()

	state := newDirState(dir, nodeName)
	s := sender{out: out}
	if s.send(ctx, state.scan()) != nil {
		return nil
	}

	deb := newDebouncer(dirQuiet, dirMaxDelay)
	defer deb.stop()
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch manifest directory %s: event stream closed", dir)
			}
			if dw.relevant(ev) {
				deb.event(time.Now())
			}
			continue
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch manifest directory %s: error stream closed", dir)
			}
			// Typically an event queue overflow: events were lost, so read everything again.
			slog.Warn("watching manifest directory", "dir", dir, "err", err)
			deb.event(time.Now())
			continue
		case <-deb.C():
			deb.fired()
		case <-ticker.C:
			// Also retries the watches that could not be set: the directory or its parent may
			// have appeared without an event we could see.
			dw.ensureWatches()
		}
		if s.send(ctx, state.scan()) != nil {
			return nil
		}
	}
}

// dirWatcher watches a manifest directory and its parent: the parent's events tell when the
// directory itself appears, disappears or is replaced, after which the directory's own watch
// must be set again (inotify watches an inode, not a path).
type dirWatcher struct {
	w      *fsnotify.Watcher
	dir    string
	parent string
}

// ensureWatches sets the watches that are not set yet. Adding an existing watch again is
// harmless, so this needs no bookkeeping of which are set. A path that does not exist is not an
// error: it is retried at the next resync, or when the parent reports it.
func (dw *dirWatcher) ensureWatches() {
	if dw.parent != dw.dir {
		dw.add(dw.parent)
	}
	dw.add(dw.dir)
}

func (dw *dirWatcher) add(path string) {
	if err := dw.w.Add(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("cannot watch manifest directory; relying on periodic resync", "path", path, "err", err)
	}
}

// relevant tells whether ev may change the directory's pods, and sets the directory's watch
// again when the directory itself was (re)created.
func (dw *dirWatcher) relevant(ev fsnotify.Event) bool {
	switch {
	case ev.Name == dw.dir:
		if ev.Has(fsnotify.Create) {
			dw.add(dw.dir)
		}
		return true
	case filepath.Dir(ev.Name) == dw.dir:
		// Dotfiles hold no manifests: an editor's swap file changes nothing.
		return !strings.HasPrefix(filepath.Base(ev.Name), ".")
	default:
		return false // another entry of the parent
	}
}
