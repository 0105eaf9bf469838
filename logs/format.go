package logs

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Stream names in CRI log records (runtimeapi.Stdout and runtimeapi.Stderr).
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

const (
	// maxLineSize is where a long line is cut into P records: containerd's CRI default
	// max_container_log_line_size, 16 KiB.
	maxLineSize = 16 << 10

	// tagPartial and tagFull are runtimeapi.LogTagPartial and runtimeapi.LogTagFull.
	tagPartial = "P"
	tagFull    = "F"

	// timeFormatIn is how containerd writes a record's timestamp (time.RFC3339Nano: trailing zeros of
	// the fraction dropped), and how the kubelet parses it.
	timeFormatIn = time.RFC3339Nano
	// timeFormatOut is the kubelet's RFC3339NanoFixed: kubectl logs --timestamps shows fixed-width
	// timestamps although the file holds variable-width ones.
	timeFormatOut = "2006-01-02T15:04:05.000000000Z07:00"
)

// record is one line of a CRI log file:
//
//	2016-10-06T00:17:09.669794202Z stdout P log content 1
//	2016-10-06T00:17:09.669794203Z stderr F log content 2
//
// A P (partial) record is followed by more of the same line in the next record of its stream.
type record struct {
	time    time.Time
	stream  string
	partial bool
	// content excludes the record's trailing newline.
	content []byte
	// truncated is set for a last record of a file that has no trailing newline: its writer died
	// mid-write, so the line it ends gets no newline on output, as with the kubelet.
	truncated bool
}

// appendRecord appends the CRI record for content to dst, as containerd's redirectLogs writes it.
func appendRecord(dst []byte, t time.Time, stream string, partial bool, content []byte) []byte {
	dst = t.AppendFormat(dst, timeFormatIn)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	tag := tagFull
	if partial {
		tag = tagPartial
	}
	dst = append(dst, ' ')
	dst = append(dst, tag...)
	dst = append(dst, ' ')
	dst = append(dst, content...)
	return append(dst, '\n')
}

// parseRecord parses one CRI record without its trailing newline, as the kubelet's parseCRILog
// does. content aliases line.
func parseRecord(line []byte) (record, error) {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return record{}, errors.New("parse CRI log record: timestamp not found")
	}
	t, err := time.Parse(timeFormatIn, string(ts))
	if err != nil {
		return record{}, fmt.Errorf("parse CRI log record timestamp: %w", err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return record{}, errors.New("parse CRI log record: stream not found")
	}
	var s string
	switch string(stream) {
	case Stdout:
		s = Stdout
	case Stderr:
		s = Stderr
	default:
		return record{}, fmt.Errorf("parse CRI log record: unexpected stream %q", stream)
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return record{}, errors.New("parse CRI log record: tag not found")
	}
	// Tags are ':'-separated for forward compatibility; only the first is defined (P or F), and
	// anything but P means a full line, as the kubelet reads it.
	tag, _, _ := bytes.Cut(tags, []byte{':'})
	return record{time: t, stream: s, partial: string(tag) == tagPartial, content: content}, nil
}

// endsLine tells whether r is the last record of its line. Besides F, that is a P shorter than
// maxLineSize: containerd cuts P records at exactly maxLineSize, so a shorter one is the rest of
// a stream that closed without a final newline, and no F will follow it.
func (r record) endsLine() bool {
	return !r.partial || len(r.content) < maxLineSize || r.truncated
}

// streamIndex maps a record's stream to an index for per-stream state.
func streamIndex(stream string) int {
	if stream == Stderr {
		return 1
	}
	return 0
}
