package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// readBufSize is the read buffer of Read; a record (at most maxLineSize plus its header) fits.
const readBufSize = 32 << 10

// ReadOptions are the kubelet's log options.
type ReadOptions struct {
	Tail       int64     // lines from the end; < 0 means all
	Since      time.Time // records before are skipped; zero means all
	Timestamps bool      // prefix each line with its RFC3339Nano timestamp and a space, as kubectl --timestamps shows
	LimitBytes int64     // stop after this many bytes of output; <= 0 means no limit
	Follow     bool
	// Running tells whether the container is still running; following stops once it is not and the
	// reader has reached the end of the file. nil means not running.
	Running func() bool
}

// Read writes the container's log at path (the current file only, as the kubelet does; the
// integrator passes <restartCount-1>.log for --previous) to out: stdout and stderr records
// interleaved in file order, P records joined with their F into one line, each line ending with
// "\n" (a record ending without newline: as the kubelet). With Follow it keeps reading as the file
// grows, and across rotation (the file renamed and a new one created: detect by inode), without
// losing or duplicating a line, until ctx ends or the container has stopped and the end is reached.
//
// Differences from the kubelet, where it splits or garbles lines: Tail counts whole lines, not
// records; Since and the timestamp apply to a line by its first record; and a stdout line cut into
// P records is not broken by stderr records between them. Timestamps are the kubelet's fixed-width
// RFC3339Nano. Each line goes to out in one Write (wrap out to flush it, for HTTP). When ctx ends,
// Read returns ctx.Err().
func Read(ctx context.Context, path string, opts ReadOptions, out io.Writer) error {
	// fsnotify follows symlinks on Linux only, so resolve them first, as the kubelet does.
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolve container log %s: %w", path, err)
	}
	if !opts.Follow && opts.Tail == 0 {
		return nil
	}
	// Watch before the first read, so that no write after it goes unnoticed.
	var wt *watch
	if opts.Follow {
		wt = newWatch(resolved)
		defer wt.close()
	}
	f, err := os.Open(resolved)
	if err != nil {
		return fmt.Errorf("open container log %s: %w", path, err)
	}
	rd := &reader{ctx: ctx, path: resolved, f: f, asm: newAssembler(out, opts)}
	defer func() { rd.f.Close() }()

	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat container log %s: %w", path, err)
	}
	start, skipBefore, err := tailStart(f, st.Size(), opts.Tail)
	if err != nil {
		return fmt.Errorf("tail container log %s: %w", path, err)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("seek container log %s to %d: %w", path, start, err)
	}
	rd.off, rd.skipBefore = start, skipBefore
	rd.br = bufio.NewReaderSize(f, readBufSize)

	if !opts.Follow {
		return rd.stop(rd.drain(true))
	}
	return rd.follow(ctx, wt, opts.Running)
}

// reader reads records from the current log file in order and hands them to its assembler.
type reader struct {
	ctx  context.Context // ends a long read too, not only a wait
	path string          // the (resolved) path of the current log file
	f    *os.File
	br   *bufio.Reader
	// off is the offset in f of the next record, which starts with carry.
	off   int64
	carry []byte // the part of the next record read so far
	// skipBefore is tailStart's: lines ending in a record before it are not wanted. Zero once the
	// first file is left behind.
	skipBefore int64
	asm        *assembler
}

// drain reads f to its end. With atEnd, the file will not grow any more, so a last record without
// a newline is taken as it is; otherwise it is kept in carry until the rest of it arrives.
func (rd *reader) drain(atEnd bool) error {
	for {
		if err := rd.ctx.Err(); err != nil {
			return err
		}
		chunk, err := rd.br.ReadSlice('\n')
		if err == nil {
			line := chunk
			if len(rd.carry) > 0 {
				rd.carry = append(rd.carry, chunk...)
				line = rd.carry
			}
			if err := rd.record(line[:len(line)-1], false); err != nil {
				return err
			}
			rd.off += int64(len(line))
			rd.carry = rd.carry[:0]
			continue
		}
		rd.carry = append(rd.carry, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("read container log %s: %w", rd.path, err)
		}
		if !atEnd || len(rd.carry) == 0 {
			return nil
		}
		// Its writer died mid-record; the kubelet shows what there is.
		err = rd.record(rd.carry, true)
		rd.off += int64(len(rd.carry))
		rd.carry = rd.carry[:0]
		return err
	}
}

// record parses one record at rd.off and hands it on. Unparsable records are skipped, as the
// kubelet does.
func (rd *reader) record(line []byte, truncated bool) error {
	r, err := parseRecord(line)
	if err != nil {
		slog.Debug("skip unparsable container log record", "path", rd.path, "offset", rd.off, "error", err)
		return nil
	}
	r.truncated = truncated
	return rd.asm.add(r, rd.off >= rd.skipBefore)
}

// stop ends reading after err, the result of the last read: it flushes the lines that have not
// ended unless the output is already complete or failed.
func (rd *reader) stop(err error) error {
	if err == nil {
		err = rd.asm.finish()
	}
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

// PodLogOptions are the options of `kubectl logs` (the pods/log subresource's query): which
// container, the current or the previous instance, and how to read it.
type PodLogOptions struct {
	Container string
	Previous  bool
	ReadOptions
}
