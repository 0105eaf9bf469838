package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// tailBlockSize is how much tailStart reads at a time, backwards from the end of the file.
const tailBlockSize = 64 << 10

// tailStart finds where to start reading f, of the given size, to output its last n lines (all
// when n < 0): start is the offset of the first record to read, and a line whose last record lies
// before skipBefore is not one of them.
//
// The kubelet counts records, so its tail of a long line shows only the line's end; here a line's
// P records and its F count as one line. With stdout and stderr interleaved, the first wanted
// line can begin before lines that are not wanted; reading from start and dropping the lines that
// end before skipBefore gives exactly the last n. A line still being written at the end of the
// file (its last record a full-size P) is not counted but read from its start, so that a follower
// shows it whole once it ends. As with the kubelet, a last record without a newline is not
// counted.
func tailStart(f io.ReaderAt, size, n int64) (start, skipBefore int64, err error) {
	if n < 0 {
		return 0, 0, nil
	}
	var (
		counted int64
		end     int64   = -1 // just past the last complete record
		seen    [2]bool      // a record of the stream was seen (backwards)
		open    [2]bool      // the stream's records belong to a wanted line whose start is not found yet
	)
	start, skipBefore = -1, -1
	err = scanRecordsBackward(f, size, tailBlockSize, func(off int64, line []byte) bool {
		if end < 0 {
			end = off + int64(len(line)) + 1
		}
		r, err := parseRecord(line)
		if err != nil {
			return true // unreadable records are skipped when reading too
		}
		s := streamIndex(r.stream)
		first := !seen[s]
		seen[s] = true
		switch {
		case r.endsLine():
			// This record ends a line of s; a wanted line of s that was open begins after it.
			open[s] = false
			if counted < n {
				counted++
				open[s], start, skipBefore = true, off, off
			}
		case first || open[s]:
			// The line being written at the end of the file, or an earlier part of a wanted line.
			open[s], start = true, off
		}
		return counted < n || open[0] || open[1]
	})
	if err != nil {
		return 0, 0, fmt.Errorf("find last %d lines: %w", n, err)
	}
	if end < 0 {
		end = 0
	}
	if start < 0 {
		start = end
	}
	switch {
	case counted < n:
		skipBefore = 0 // fewer lines than asked: all are wanted
	case n == 0:
		skipBefore = end
	}
	return start, skipBefore, nil
}

// scanRecordsBackward calls fn with each complete record of r (without its newline) and its
// offset, last first, until fn returns false, reading block bytes at a time. A last record
// without a newline is left out.
func scanRecordsBackward(r io.ReaderAt, size int64, block int, fn func(off int64, line []byte) bool) error {
	var (
		tail     []byte // bytes from pos on not yet passed to fn: the end of a record that began before pos
		pos      = size
		complete bool // tail ends with a newline: the trailing unterminated record was dropped
	)
	for pos > 0 {
		n := min(int64(block), pos)
		pos -= n
		buf := make([]byte, n, n+int64(len(tail)))
		if _, err := r.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		buf = append(buf, tail...)
		i := len(buf) // buf[:i] ends with a newline, once complete
		if !complete {
			j := bytes.LastIndexByte(buf, '\n')
			if j < 0 {
				tail = buf
				continue
			}
			i, complete = j+1, true
		}
		for {
			j := bytes.LastIndexByte(buf[:i-1], '\n')
			if j < 0 {
				break // this record began before pos
			}
			if !fn(pos+int64(j)+1, buf[j+1:i-1]) {
				return nil
			}
			i = j + 1
		}
		tail = buf[:i]
	}
	if complete && len(tail) > 0 {
		fn(0, tail[:len(tail)-1])
	}
	return nil
}
