package logs

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestScanRecordsBackward(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string // "offset:record", last first
	}{
		{"empty", "", nil},
		{"one", "abc\n", []string{"0:abc"}},
		{"several", "a\nbb\nccc\n", []string{"5:ccc", "2:bb", "0:a"}},
		{"empty records", "\n\nx\n", []string{"2:x", "1:", "0:"}},
		{"last without newline left out", "a\nbb\ncc", []string{"2:bb", "0:a"}},
		{"no newline at all", "abc", nil},
		{"long records", strings.Repeat("x", 20) + "\n" + strings.Repeat("y", 13) + "\n",
			[]string{"21:" + strings.Repeat("y", 13), "0:" + strings.Repeat("x", 20)}},
	}
	for _, tt := range tests {
		// Every block size, so that records start, end and straddle at block boundaries.
		for block := 1; block <= len(tt.data)+1; block++ {
			t.Run(fmt.Sprintf("%s/block %d", tt.name, block), func(t *testing.T) {
				var got []string
				r := strings.NewReader(tt.data)
				err := scanRecordsBackward(r, int64(len(tt.data)), block, func(off int64, line []byte) bool {
					got = append(got, fmt.Sprintf("%d:%s", off, line))
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("records = %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func TestScanRecordsBackwardStops(t *testing.T) {
	data := "a\nb\nc\nd\n"
	var got []string
	err := scanRecordsBackward(strings.NewReader(data), int64(len(data)), 3, func(off int64, line []byte) bool {
		got = append(got, string(line))
		return len(got) < 2
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"d", "c"}; !slices.Equal(got, want) {
		t.Fatalf("records = %q, want %q", got, want)
	}
}

func TestTailStart(t *testing.T) {
	a := raw(1, Stdout, "F", "a")        // line 1 ends
	x1 := raw(2, Stdout, "P", full('x')) // line 3 begins
	b := raw(3, Stderr, "F", "b")        // line 2 ends
	x2 := raw(4, Stdout, "F", "x")       // line 3 ends
	y1 := raw(5, Stderr, "P", full('y')) // line 4, being written
	off := func(recs ...string) int64 { return int64(len(strings.Join(recs, ""))) }
	file := a + x1 + b + x2 + y1
	tests := []struct {
		name           string
		n              int64
		wantStart      int64
		wantSkipBefore int64
	}{
		{"all", -1, 0, 0},
		{"none: from the line being written", 0, off(a, x1, b, x2), off(file)},
		{"last line, begun before a line inside it", 1, off(a), off(a, x1, b)},
		{"two lines", 2, off(a), off(a, x1)},
		{"three", 3, 0, 0},
		{"more than there are", 10, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, skipBefore, err := tailStart(strings.NewReader(file), off(file), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if start != tt.wantStart || skipBefore != tt.wantSkipBefore {
				t.Fatalf("tailStart(%d) = %d, %d; want %d, %d", tt.n, start, skipBefore, tt.wantStart, tt.wantSkipBefore)
			}
		})
	}
}
