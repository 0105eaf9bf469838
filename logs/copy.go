package logs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// copyBufSize is the read buffer of CopyStream (containerd reads 4096 bytes at a time; a pipe
// holds 64 KiB). It must not exceed maxLineSize, so that one read adds at most one cut to the line
// being assembled.
const copyBufSize = 8 << 10

// maxBatch is how many bytes of records CopyStream gathers before it writes them: records are
// written once what the pipe had ready is consumed (so a line waits for no later one) or when the
// batch reaches this size. One write(2) per batch rather than per line is what lets the driver
// keep up with a container that writes short lines as fast as it can.
const maxBatch = 64 << 10

// CopyStream copies r (a container's stdout or stderr pipe) into w as CRI records tagged with
// stream ("stdout" or "stderr") until r reaches EOF or fails, splitting lines longer than 16 KiB
// into P records followed by a final F record, as containerd does; a last line without a trailing
// newline at EOF is written as containerd does it: as a P record. now gives timestamps (time.Now
// in production; nil means time.Now).
//
// As containerd's redirectLogs, it strips a line's "\n" or "\r\n", and it keeps draining r when
// writing fails, so that a full disk never blocks the container on a full pipe. It returns r's
// error (nil at EOF) joined with the first write error.
func CopyStream(w *Writer, stream string, r io.Reader, now func() time.Time) error {
	if stream != Stdout && stream != Stderr {
		return fmt.Errorf("copy container log stream %q to %s: stream is neither %s nor %s", stream, w.path, Stdout, Stderr)
	}
	if now == nil {
		now = time.Now
	}
	var (
		br       = bufio.NewReaderSize(r, copyBufSize)
		line     []byte // the line so far, without its newline; at most maxLineSize after each cut
		batch    []byte // records not written yet
		ends     []int  // where each record of batch ends
		writeErr error
		readErr  error
	)
	flush := func() {
		if len(ends) == 0 {
			return
		}
		if err := w.writeRecords(batch, ends); err != nil && writeErr == nil {
			writeErr = err
			slog.Error("write container log, dropping output until it succeeds", "path", w.path, "stream", stream, "error", err)
		}
		batch, ends = batch[:0], ends[:0]
	}
	emit := func(partial bool, content []byte) {
		batch = appendRecord(batch, now(), stream, partial, content)
		ends = append(ends, len(batch))
		if len(batch) >= maxBatch {
			flush()
		}
	}
	for {
		// Nothing more is ready: write what was read before blocking for more.
		if br.Buffered() == 0 {
			flush()
		}
		chunk, more, err := readLineChunk(br)
		line = append(line, chunk...)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = fmt.Errorf("read container %s for log %s: %w", stream, w.path, err)
			}
			if len(line) == 0 {
				break
			}
		}
		if len(line) > maxLineSize {
			emit(true, line[:maxLineSize])
			line = append(line[:0], line[maxLineSize:]...)
		}
		if more {
			continue
		}
		// A line cut short by EOF or a read error has no newline: containerd tags it P.
		emit(err != nil, line)
		line = line[:0]
		if err != nil {
			break
		}
	}
	flush()
	return errors.Join(readErr, writeErr)
}

// readLineChunk reads up to the next newline, as containerd's readLine: it returns the bytes
// without "\n" or "\r\n", more when the buffer filled before a newline, and a non-nil error
// exactly when the input ended (or failed) before a newline. Unlike bufio.Reader.ReadLine it
// reports that error, which tells a last line without a newline from one with it.
func readLineChunk(br *bufio.Reader) (chunk []byte, more bool, err error) {
	chunk, err = br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Keep a '\r' that ends the buffer for the next read, which can tell whether a '\n' follows.
		if n := len(chunk); n > 0 && chunk[n-1] == '\r' && br.UnreadByte() == nil {
			chunk = chunk[:n-1]
		}
		return chunk, true, nil
	}
	if n := len(chunk); n > 0 && chunk[n-1] == '\n' {
		chunk = chunk[:n-1]
		if n > 1 && chunk[n-2] == '\r' {
			chunk = chunk[:n-2]
		}
	}
	return chunk, false, err
}
