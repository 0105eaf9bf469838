package logs

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stamp is how --timestamps shows second i of a test log.
func stamp(i int) string { return at(i).Format(timeFormatOut) + " " }

func TestRead(t *testing.T) {
	// interleaved has a stdout line cut into P records with a stderr line between them.
	interleaved := raw(1, Stdout, "F", "a") +
		raw(2, Stdout, "P", full('x')) +
		raw(3, Stderr, "F", "b") +
		raw(4, Stdout, "F", "x-end") +
		raw(5, Stderr, "F", "c")
	xLine := full('x') + "x-end\n"
	// simple is three lines of each stream, alternating.
	simple := raw(1, Stdout, "F", "out1") + raw(2, Stderr, "F", "err1") + raw(3, Stdout, "F", "out2") +
		raw(4, Stderr, "F", "err2") + raw(5, Stdout, "F", "out3") + raw(6, Stderr, "F", "err3")
	// longLines holds two lines of 2.5 and 2 records.
	longLines := raw(1, Stdout, "P", full('a')) + raw(2, Stdout, "P", full('b')) + raw(3, Stdout, "F", "c") +
		raw(4, Stderr, "P", full('d')) + raw(5, Stderr, "F", "e")
	tests := []struct {
		name string
		file string
		opts ReadOptions
		want string
	}{
		{"all", simple, ReadOptions{Tail: -1}, "out1\nerr1\nout2\nerr2\nout3\nerr3\n"},
		{"empty file", "", ReadOptions{Tail: -1}, ""},
		{"tail 0", simple, ReadOptions{Tail: 0}, ""},
		{"tail 1", simple, ReadOptions{Tail: 1}, "err3\n"},
		{"tail 4", simple, ReadOptions{Tail: 4}, "out2\nerr2\nout3\nerr3\n"},
		{"tail more than lines", simple, ReadOptions{Tail: 100}, "out1\nerr1\nout2\nerr2\nout3\nerr3\n"},
		{"since", simple, ReadOptions{Tail: -1, Since: at(4)}, "err2\nout3\nerr3\n"},
		{"since between records", simple, ReadOptions{Tail: -1, Since: at(4).Add(-time.Nanosecond)}, "err2\nout3\nerr3\n"},
		{"since after all", simple, ReadOptions{Tail: -1, Since: at(7)}, ""},
		{"tail then since", simple, ReadOptions{Tail: 4, Since: at(4)}, "err2\nout3\nerr3\n"},
		{"timestamps", simple, ReadOptions{Tail: 2, Timestamps: true}, stamp(5) + "out3\n" + stamp(6) + "err3\n"},
		{"limit bytes cuts exactly", simple, ReadOptions{Tail: -1, LimitBytes: 7}, "out1\ner"},
		{"limit bytes at line end", simple, ReadOptions{Tail: -1, LimitBytes: 10}, "out1\nerr1\n"},
		{"limit bytes beyond output", simple, ReadOptions{Tail: -1, LimitBytes: 1000}, "out1\nerr1\nout2\nerr2\nout3\nerr3\n"},
		{"limit bytes counts timestamps", simple, ReadOptions{Tail: -1, LimitBytes: 10, Timestamps: true}, stamp(1)[:10]},
		{"limit bytes after tail", simple, ReadOptions{Tail: 1, LimitBytes: 3}, "err"},

		{"P joined with F", longLines, ReadOptions{Tail: -1}, full('a') + full('b') + "c\n" + full('d') + "e\n"},
		{"tail counts lines, not records", longLines, ReadOptions{Tail: 1}, full('d') + "e\n"},
		{"tail across P and F", longLines, ReadOptions{Tail: 2}, full('a') + full('b') + "c\n" + full('d') + "e\n"},
		{"timestamp of a line is its first record's", longLines, ReadOptions{Tail: 1, Timestamps: true}, stamp(4) + full('d') + "e\n"},
		{"since judges a line by its first record", longLines, ReadOptions{Tail: -1, Since: at(2)}, full('d') + "e\n"},

		{"interleaved streams in order of line end", interleaved, ReadOptions{Tail: -1}, "a\nb\n" + xLine + "c\n"},
		{"interleaved tail 1", interleaved, ReadOptions{Tail: 1}, "c\n"},
		{"interleaved tail 2 skips the line inside", interleaved, ReadOptions{Tail: 2}, xLine + "c\n"},
		{"interleaved tail 3", interleaved, ReadOptions{Tail: 3}, "b\n" + xLine + "c\n"},
		{"interleaved timestamps", interleaved, ReadOptions{Tail: 2, Timestamps: true}, stamp(2) + xLine + stamp(5) + "c\n"},

		{"last line without newline", raw(1, Stdout, "F", "a") + raw(2, Stdout, "P", "no newline"),
			ReadOptions{Tail: -1}, "a\nno newline"},
		{"last line without newline, tail 1", raw(1, Stdout, "F", "a") + raw(2, Stdout, "P", "no newline"),
			ReadOptions{Tail: 1}, "no newline"},
		{"line without newline glued to the next, one timestamp", raw(1, Stdout, "P", "abc") + raw(2, Stderr, "F", "def"),
			ReadOptions{Tail: -1, Timestamps: true}, stamp(1) + "abcdef\n"},
		{"line being written at the end", raw(1, Stdout, "F", "a") + raw(2, Stdout, "P", full('x')),
			ReadOptions{Tail: -1}, "a\n" + full('x')},
		{"line being written at the end is not counted", raw(1, Stdout, "F", "a") + raw(2, Stdout, "P", full('x')),
			ReadOptions{Tail: 1}, "a\n"},
		{"half-written last record", raw(1, Stdout, "F", "a") + strings.TrimSuffix(raw(2, Stdout, "F", "half"), "\n"),
			ReadOptions{Tail: -1}, "a\nhalf"},
		{"half-written last record is not counted", raw(1, Stdout, "F", "a") + strings.TrimSuffix(raw(2, Stdout, "F", "half"), "\n"),
			ReadOptions{Tail: 1}, "a\n"},
		{"unparsable records skipped", raw(1, Stdout, "F", "a") + "garbage\n" + raw(2, "stdin", "F", "x") + raw(3, Stderr, "F", "b"),
			ReadOptions{Tail: -1}, "a\nb\n"},
		{"unparsable records not counted", raw(1, Stdout, "F", "a") + raw(3, Stderr, "F", "b") + "garbage\n",
			ReadOptions{Tail: 1}, "b\n"},
		{"empty lines", raw(1, Stdout, "F", "") + raw(2, Stdout, "F", ""), ReadOptions{Tail: -1, Timestamps: true},
			stamp(1) + "\n" + stamp(2) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := readString(t, writeFile(t, tt.file), tt.opts)
			if got != tt.want {
				t.Fatalf("Read = %.200q (%d bytes), want %.200q (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
		})
	}
}

// TestReadLargeTail reads the end of a file far larger than a tail block.
func TestReadLargeTail(t *testing.T) {
	var b strings.Builder
	for i := range 20000 {
		b.WriteString(raw(i, Stdout, "F", strings.Repeat("y", i%100)))
	}
	path := writeFile(t, b.String())
	got := readString(t, path, ReadOptions{Tail: 3})
	want := strings.Repeat("y", 97) + "\n" + strings.Repeat("y", 98) + "\n" + strings.Repeat("y", 99) + "\n"
	if got != want {
		t.Fatalf("Read tail 3 = %q, want %q", got, want)
	}
	if got := strings.Count(readString(t, path, ReadOptions{Tail: 12345}), "\n"); got != 12345 {
		t.Fatalf("Read tail 12345 gave %d lines", got)
	}
}

// TestReadThroughWriter writes through CopyStream and reads back: a 100 KiB line comes back whole,
// and the streams interleave in the order they were written.
func TestReadThroughWriter(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 100<<10/16)
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	clock := testClock(time.Millisecond)
	for _, c := range []struct{ stream, text string }{
		{Stdout, "first\n"}, {Stderr, long + "\n"}, {Stdout, "second\n"}, {Stderr, "third"},
	} {
		if err := CopyStream(w, c.stream, strings.NewReader(c.text), clock); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	var partials int
	for _, r := range parseFile(t, path) {
		if r.partial {
			partials++
		}
	}
	if partials != 7 { // 6 cuts of the long line, and the last line without newline
		t.Fatalf("file holds %d P records, want 7", partials)
	}
	tests := []struct {
		opts ReadOptions
		want string
	}{
		{ReadOptions{Tail: -1}, "first\n" + long + "\nsecond\nthird"},
		{ReadOptions{Tail: 3}, long + "\nsecond\nthird"},
		{ReadOptions{Tail: 3, LimitBytes: 100 << 10}, long[:100<<10]},
	}
	for _, tt := range tests {
		if got := readString(t, path, tt.opts); got != tt.want {
			t.Fatalf("Read(%+v) = %.100q (%d bytes), want %.100q (%d bytes)", tt.opts, got, len(got), tt.want, len(tt.want))
		}
	}
}

func TestReadMissingFile(t *testing.T) {
	err := Read(context.Background(), filepath.Join(t.TempDir(), "0.log"), ReadOptions{Tail: -1}, &syncBuffer{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing file: %v, want fs.ErrNotExist", err)
	}
}
