package logs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// followPoll is how long a follower at the end of the file waits without an fsnotify event
	// before it reads again and asks whether the container still runs: a fallback for missed
	// events, and the bound on noticing a stopped container (the kubelet waits 1s). Running is
	// asked at most this often.
	followPoll = 250 * time.Millisecond
	// followPollNoWatch replaces followPoll when fsnotify is unavailable (inotify limits reached),
	// to keep a new line's latency within 100ms.
	followPollNoWatch = 100 * time.Millisecond
	// switchAttempts bounds how often switchFile retries when rotations race with it.
	switchAttempts = 10
)

// follow reads the log as it grows, into the files that replace it on rotation, until ctx ends
// or running reports the container stopped and the end of the log has been read.
func (rd *reader) follow(ctx context.Context, wt *watch, running func() bool) error {
	var asked time.Time
	for {
		if err := rd.drain(false); err != nil {
			return rd.stop(err)
		}
		switched, err := rd.switchIfRotated()
		if err != nil {
			return rd.stop(err)
		}
		if switched {
			continue
		}
		if time.Since(asked) >= wt.interval {
			asked = time.Now()
			if running == nil || !running() {
				// Read what the container wrote before it stopped, rotations included.
				return rd.stop(rd.drainRest())
			}
		}
		if err := wt.wait(ctx); err != nil {
			return err
		}
	}
}

// drainRest reads the current file, and any that replaced it, to the end, for a stopped container.
func (rd *reader) drainRest() error {
	for {
		if err := rd.drain(true); err != nil {
			return err
		}
		switched, err := rd.switchIfRotated()
		if err != nil || !switched {
			return err
		}
	}
}

// switchIfRotated moves on to the next file when the current one has been rotated away, that is
// when the path no longer names it (the kubelet's check: a new inode).
func (rd *reader) switchIfRotated() (bool, error) {
	cur, err := rd.f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat container log %s: %w", rd.path, err)
	}
	at, err := os.Stat(rd.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Between the writer's rename and its creating the new file: the Create event wakes us.
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat container log %s: %w", rd.path, err)
	}
	if os.SameFile(cur, at) {
		return false, nil
	}
	// The writer renames a file before it creates the next one, and never writes to a renamed
	// file, so what is in the current file now is all it will ever hold.
	if err := rd.drain(true); err != nil {
		return false, err
	}
	next, err := nextFile(rd.path, cur)
	if err != nil || next == nil {
		return false, err
	}
	rd.f.Close()
	rd.f, rd.off, rd.skipBefore = next, 0, 0
	rd.br.Reset(next)
	return true, nil
}

// logFile is one of a container's log files, current or rotated.
type logFile struct {
	path string
	info os.FileInfo
	f    *os.File // open already, for the current file
}

// nextFile opens the file written after cur: the next rotated file, or the current one at path.
// A reader that lagged behind several rotations thus reads each rotated file in turn instead of
// jumping to the newest and losing the ones between. If cur has been pruned, so have all files
// older than it, and the oldest file left is next. It returns nil when no file follows cur yet.
func nextFile(path string, cur os.FileInfo) (*os.File, error) {
	for range switchAttempts {
		chain, err := logFiles(path)
		if err != nil {
			return nil, err
		}
		i := 0
		for j, lf := range chain {
			if os.SameFile(lf.info, cur) {
				i = j + 1
				break
			}
		}
		var next *os.File
		if i < len(chain) {
			next = chain[i].f
			if next == nil {
				next, err = openSame(chain[i])
			}
		}
		for _, lf := range chain {
			if lf.f != nil && lf.f != next {
				lf.f.Close()
			}
		}
		switch {
		case err != nil:
			return nil, err
		case i >= len(chain):
			return nil, nil
		case next != nil:
			return next, nil
		}
		// The file was pruned or renamed since it was listed: list again.
	}
	return nil, nil
}

// logFiles lists path's rotated files and the current file, oldest first, the current one open.
// The current file is opened before the rotated ones are listed: if it is rotated meanwhile it
// shows up among them and is listed once, in its place, and any newer file is left for later.
func logFiles(path string) ([]logFile, error) {
	current, err := os.Open(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open container log %s: %w", path, err)
	}
	var currentInfo os.FileInfo
	if current != nil {
		if currentInfo, err = current.Stat(); err != nil {
			current.Close()
			return nil, fmt.Errorf("stat container log %s: %w", path, err)
		}
	}
	rotated, err := rotatedFiles(path)
	if err != nil {
		if current != nil {
			current.Close()
		}
		return nil, err
	}
	var chain []logFile
	for _, r := range rotated {
		info, err := os.Stat(r.path)
		if err != nil {
			continue // pruned since listed
		}
		if current != nil && os.SameFile(info, currentInfo) {
			chain = append(chain, logFile{path: r.path, info: info, f: current})
			current = nil
			continue
		}
		chain = append(chain, logFile{path: r.path, info: info})
	}
	if current != nil {
		chain = append(chain, logFile{path: path, info: currentInfo, f: current})
	}
	return chain, nil
}

// openSame opens lf, or returns nil if its path no longer names the file that was listed.
func openSame(lf logFile) (*os.File, error) {
	f, err := os.Open(lf.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open container log %s: %w", lf.path, err)
	}
	info, err := f.Stat()
	if err != nil || !os.SameFile(info, lf.info) {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// watch wakes a follower when the log file or its rotated files change.
type watch struct {
	w        *fsnotify.Watcher // nil: poll only
	name     string            // base name of the log file
	interval time.Duration
}

// newWatch watches the directory of the log file at path (the file itself is replaced on
// rotation). Without fsnotify it falls back to polling.
func newWatch(path string) *watch {
	dir, name := filepath.Split(path)
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(dir); err != nil {
			w.Close()
		}
	}
	if err != nil {
		slog.Warn("cannot watch container log directory, polling it", "path", path, "error", err)
		return &watch{name: name, interval: followPollNoWatch}
	}
	return &watch{w: w, name: name, interval: followPoll}
}

func (wt *watch) close() {
	if wt.w != nil {
		wt.w.Close()
	}
}

// wait returns when the log may have changed: on an event for one of its files, or after the
// poll interval. It returns ctx.Err() once ctx ends.
func (wt *watch) wait(ctx context.Context) error {
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if wt.w != nil {
		events, errs = wt.w.Events, wt.w.Errors
	}
	timer := time.NewTimer(wt.interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if wt.concerns(e) {
				wt.discardQueued()
				return nil
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Typically an overflowed event queue: events were lost, so read again.
			slog.Debug("container log watch error", "file", wt.name, "error", err)
			return nil
		}
	}
}

// concerns tells whether e is about the log file or one of its rotated files, not another
// instance's log in the same directory.
func (wt *watch) concerns(e fsnotify.Event) bool {
	base := filepath.Base(e.Name)
	return base == wt.name || strings.HasPrefix(base, wt.name+".")
}

// discardQueued drops the events already queued: the read that follows covers them, and each
// would otherwise cost a read that finds nothing.
func (wt *watch) discardQueued() {
	for {
		select {
		case _, ok := <-wt.w.Events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}
