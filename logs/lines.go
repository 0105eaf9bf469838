package logs

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// maxPendingLine bounds the part of a line held back while waiting for its end. A container that
// writes megabytes without a newline produces P records without end; past this size they are
// written out before the line ends, as the kubelet writes every P record at once.
const maxPendingLine = 1 << 20

// errDone ends reading early: LimitBytes bytes or, without Follow, Tail lines have been written.
var errDone = errors.New("container log output complete")

// pendingLine is the part of a line of one stream seen so far.
type pendingLine struct {
	active bool
	// seq orders lines by their first record, for the final flush.
	seq uint64
	// time is the line's first record's timestamp: the one --timestamps shows and Since compares.
	time time.Time
	skip bool // before Since
	// started is set once part of the line was written early (past maxPendingLine).
	started bool
	buf     []byte
}

// assembler turns records into output lines. A line's P records are joined with its F per stream,
// so that a stderr record between a stdout line's P and F does not cut that line, which the
// kubelet does; lines are written in the order of their last record.
type assembler struct {
	out        io.Writer
	since      time.Time
	timestamps bool
	remain     int64 // bytes left to write; < 0: no limit
	lines      int64 // lines left to write; < 0: no limit
	// atLineStart is the kubelet's isNewLine: nothing written yet, or the last byte written was a
	// newline. Only then does a line get its timestamp, so a line that ended without a newline
	// and the one glued onto it show one timestamp, as with the kubelet.
	atLineStart bool
	seq         uint64
	pending     [2]pendingLine
	scratch     []byte
}

func newAssembler(out io.Writer, opts ReadOptions) *assembler {
	a := &assembler{out: out, since: opts.Since, timestamps: opts.Timestamps, remain: -1, lines: -1, atLineStart: true}
	if opts.LimitBytes > 0 {
		a.remain = opts.LimitBytes
	}
	if !opts.Follow && opts.Tail >= 0 {
		// Without follow the kubelet stops after Tail lines, so that lines appended meanwhile do not
		// make the answer longer than asked.
		a.lines = opts.Tail
	}
	return a
}

// add takes the next record in file order. wanted is false for a record before the first line
// that Tail asks for: a line it ends is dropped.
func (a *assembler) add(r record, wanted bool) error {
	p := &a.pending[streamIndex(r.stream)]
	if !p.active {
		*p = pendingLine{active: true, seq: a.seq, time: r.time, skip: r.time.Before(a.since), buf: p.buf[:0]}
		a.seq++
	}
	p.buf = append(p.buf, r.content...)
	if !r.endsLine() {
		// An unwanted record may belong to a line that ends before the tail starts, so it is never
		// written early.
		if len(p.buf) >= maxPendingLine && wanted && !p.skip {
			err := a.write(p, p.buf)
			p.started, p.buf = true, p.buf[:0]
			return err
		}
		return nil
	}
	if !r.partial && !r.truncated {
		p.buf = append(p.buf, '\n')
	}
	return a.end(p, wanted)
}

// end writes out the pending line p, which has ended, and resets it.
func (a *assembler) end(p *pendingLine, wanted bool) error {
	p.active = false
	if !wanted {
		return nil
	}
	if !p.skip {
		if err := a.write(p, p.buf); err != nil {
			return err
		}
	}
	if a.lines > 0 {
		a.lines--
		if a.lines == 0 {
			return errDone
		}
	}
	return nil
}

// finish writes the lines that have not ended when reading stops, without a newline, as the
// kubelet writes P records.
func (a *assembler) finish() error {
	first, second := &a.pending[0], &a.pending[1]
	if second.active && (!first.active || second.seq < first.seq) {
		first, second = second, first
	}
	for _, p := range []*pendingLine{first, second} {
		if p.active {
			if err := a.end(p, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// write writes data, a line or part of one, cut at the byte limit and prefixed with its timestamp
// when asked and at the start of an output line.
func (a *assembler) write(p *pendingLine, data []byte) error {
	if a.timestamps && a.atLineStart && !p.started {
		a.scratch = p.time.AppendFormat(a.scratch[:0], timeFormatOut)
		a.scratch = append(a.scratch, ' ')
		a.scratch = append(a.scratch, data...)
		data = a.scratch
	}
	if len(data) == 0 {
		return nil
	}
	if a.remain >= 0 && int64(len(data)) > a.remain {
		data = data[:a.remain]
	}
	n, err := a.out.Write(data)
	if a.remain >= 0 {
		a.remain -= int64(n)
	}
	if err != nil {
		return fmt.Errorf("write container log output: %w", err)
	}
	if n < len(data) {
		return fmt.Errorf("write container log output: %w", io.ErrShortWrite)
	}
	a.atLineStart = data[len(data)-1] == '\n'
	if a.remain == 0 {
		return errDone
	}
	return nil
}
