package logs

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAssembler(t *testing.T) {
	const flushAt = maxPendingLine / maxLineSize // full-size P records that fill the pending limit
	rec := func(i int, stream, tag, content string) record {
		return record{time: at(i), stream: stream, partial: tag == tagPartial, content: []byte(content)}
	}
	// overlong is a stdout line of flushAt+2 full-size P records and an F, with a stderr line
	// between its records once the limit is reached.
	var overlong []record
	for i := range flushAt + 2 {
		overlong = append(overlong, rec(1, Stdout, "P", full('x')))
		if i == flushAt {
			overlong = append(overlong, rec(2, Stderr, "F", "b"))
		}
	}
	overlong = append(overlong, rec(3, Stdout, "F", "end"))
	early := strings.Repeat(full('x'), flushAt)

	tests := []struct {
		name    string
		records []record
		wanted  func(i int) bool // nil: all wanted
		opts    ReadOptions
		finish  bool
		want    string
	}{
		{"overlong line written early", overlong, nil, ReadOptions{Tail: -1}, false,
			early + "b\n" + full('x') + full('x') + "end\n"},
		{"overlong line, one timestamp", overlong, nil, ReadOptions{Tail: -1, Timestamps: true}, false,
			stamp(1) + early + "b\n" + full('x') + full('x') + "end\n"},
		{"overlong line before since held back and dropped", overlong, nil, ReadOptions{Tail: -1, Since: at(2)}, false, "b\n"},
		{"unwanted records never written early", overlong, func(i int) bool { return i > flushAt }, ReadOptions{Tail: -1}, false,
			"b\n" + strings.Repeat(full('x'), flushAt+2) + "end\n"},
		{"lines not ended flushed in order of their start", []record{
			rec(1, Stderr, "P", full('e')), rec(2, Stdout, "P", full('o')), rec(3, Stdout, "F", "o"), rec(4, Stdout, "P", full('p')),
		}, nil, ReadOptions{Tail: -1}, true, full('o') + "o\n" + full('e') + full('p')},
		{"tail counts lines", []record{rec(1, Stdout, "F", "a"), rec(2, Stdout, "F", "b"), rec(3, Stdout, "F", "c")},
			nil, ReadOptions{Tail: 2}, false, "a\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			a := newAssembler(&out, tt.opts)
			var err error
			for i, r := range tt.records {
				if err = a.add(r, tt.wanted == nil || tt.wanted(i)); err != nil {
					break
				}
			}
			if err == nil && tt.finish {
				err = a.finish()
			}
			if err != nil && !errors.Is(err, errDone) {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Fatalf("output = %.80q...%.40q (%d bytes), want %.80q...%.40q (%d bytes)",
					got, got[max(0, len(got)-40):], len(got), tt.want, tt.want[max(0, len(tt.want)-40):], len(tt.want))
			}
		})
	}
}
