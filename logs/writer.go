package logs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Writer writes CRI-format records of one container to a file with size-based rotation, as the
// kubelet's container log manager keeps them: when the file would exceed MaxSize, it is renamed to
// <path>.<UTC timestamp YYYYMMDD-hhmmss[.n]> and a new <path> is started; at most MaxFiles files
// (the current one included) are kept, the oldest rotated ones removed. Safe for concurrent use by
// the stdout and stderr copiers. Each record is written with a single write(2) so a reader never
// sees half a record unless the process dies mid-write.
//
// Unlike the kubelet, Writer does not compress rotated files: a follower that lags behind a
// rotation must still be able to read them.
type Writer struct {
	path     string
	maxSize  int64
	maxFiles int
	// now names rotated files; time.Now but for tests.
	now func() time.Time

	mu   sync.Mutex
	f    *os.File // nil once closed
	size int64
}

// NewWriter opens the log file at path for appending, creating it and its directory if needed:
// a restarted log driver continues the file of the same container instance. maxSize must be
// positive and maxFiles at least 2, as the kubelet requires.
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize <= 0 {
		return nil, fmt.Errorf("open container log writer %s: max size %d is not positive", path, maxSize)
	}
	if maxFiles < 2 {
		return nil, fmt.Errorf("open container log writer %s: max files %d is less than 2", path, maxFiles)
	}
	f, size, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	if err := terminateRecord(f, size); err != nil {
		f.Close()
		return nil, fmt.Errorf("open container log writer %s: %w", path, err)
	}
	return &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now, f: f, size: size}, nil
}

// openLogFile opens path for appending, with the directory and permissions containerd uses for
// container logs, and returns its size.
func openLogFile(path string) (*os.File, int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, fmt.Errorf("create directory of container log %s: %w", path, err)
	}
	// O_RDWR rather than O_WRONLY so that terminateRecord can read the last byte.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("open container log %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("stat container log %s: %w", path, err)
	}
	return f, st.Size(), nil
}

// terminateRecord ends the file with a newline if it does not: a driver that died mid-write left
// half a record, and appending to it would glue the next record onto it and lose both to the
// parser. Terminated, the half record still reads as a (cut) line.
func terminateRecord(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read end of %s: %w", f.Name(), err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := f.Write([]byte{'\n'}); err != nil {
		return fmt.Errorf("terminate half-written record of %s: %w", f.Name(), err)
	}
	return nil
}

// Close closes the current file. Later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close container log %s: %w", w.path, err)
	}
	return nil
}

// writeRecord writes one whole record (ending in a newline), rotating first if it would take the
// file past maxSize. A record is never split across files, and a record larger than maxSize goes
// alone into a fresh file.
func (w *Writer) writeRecord(rec []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write container log %s: %w", w.path, os.ErrClosed)
	}
	var rotateErr error
	if w.size > 0 && w.size+int64(len(rec)) > w.maxSize {
		// On failure, keep writing to the current file: an oversized file beats lost lines.
		rotateErr = w.rotate()
	}
	n, err := w.f.Write(rec)
	w.size += int64(n)
	if err != nil {
		err = fmt.Errorf("write container log %s: %w", w.path, err)
	}
	return errors.Join(rotateErr, err)
}

// writeRecords writes whole records (each ending in a newline) with as few write(2) calls as
// rotation allows: one for all of them unless the file reaches maxSize among them, in which case
// it rotates between two records, as writeRecord does. ends are the offsets in recs at which each
// record ends. A reader still never sees half a record unless the process dies mid-write.
func (w *Writer) writeRecords(recs []byte, ends []int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write container log %s: %w", w.path, os.ErrClosed)
	}
	var errs []error
	start := 0 // of the records not written yet
	flush := func(end int) {
		if end == start {
			return
		}
		n, err := w.f.Write(recs[start:end])
		w.size += int64(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("write container log %s: %w", w.path, err))
		}
		start = end
	}
	prev := 0
	for _, end := range ends {
		pending := int64(end - start)
		if w.size+pending > w.maxSize && w.size+int64(prev-start) > 0 {
			// This record would take the file past maxSize: what comes before it goes into the
			// current file, then the file rotates.
			flush(prev)
			if w.size > 0 {
				if err := w.rotate(); err != nil {
					// Keep writing to the current file: an oversized file beats lost lines.
					errs = append(errs, err)
				}
			}
		}
		prev = end
	}
	flush(prev)
	return errors.Join(errs...)
}

// rotate renames the current file aside, starts a new one and prunes the oldest rotated files.
// The rename comes before the new file exists, so a follower that finds a new file at path knows
// the old one is complete. w.mu is held.
func (w *Writer) rotate() error {
	rotated, err := rotatedFiles(w.path)
	if err != nil {
		return fmt.Errorf("rotate container log %s: %w", w.path, err)
	}
	name := nextRotatedName(w.path, rotated, w.now())
	switch err := os.Rename(w.path, name); {
	case err == nil:
		rotated = append(rotated, rotatedName{path: name})
	case errors.Is(err, fs.ErrNotExist):
		// Our file is no longer at path (removed, or renamed by an earlier rotation whose new file
		// could not be created): there is nothing to rename, only a file to start.
	default:
		return fmt.Errorf("rotate container log %s to %s: %w", w.path, name, err)
	}
	f, _, err := openLogFile(w.path)
	if err != nil {
		return fmt.Errorf("rotate container log %s: %w", w.path, err)
	}
	old := w.f
	w.f, w.size = f, 0
	var errs []error
	if err := old.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close rotated container log %s: %w", name, err))
	}
	// Keep maxFiles-1 rotated files beside the current one.
	for len(rotated) > w.maxFiles-1 {
		if err := os.Remove(rotated[0].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove old container log %s: %w", rotated[0].path, err))
		}
		rotated = rotated[1:]
	}
	return errors.Join(errs...)
}
