package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriterRotation(t *testing.T) {
	recordSize := len(raw(0, Stdout, tagFull, "line 0000"))
	tests := []struct {
		name       string
		maxSize    int64
		maxFiles   int
		lines      int
		sameSecond bool // rotations within one second need .n suffixes
		wantFiles  int
	}{
		{"no rotation", 1 << 20, 3, 50, false, 1},
		{"one rotation", int64(10 * recordSize), 3, 15, false, 2},
		{"keeps max files", int64(10 * recordSize), 3, 200, false, 3},
		{"keeps max files, same second", int64(10 * recordSize), 4, 200, true, 4},
		{"two files", int64(7*recordSize + 3), 2, 100, true, 2},
		{"record larger than max size", int64(recordSize / 2), 3, 10, true, 3},
	}
	// Each case twice: record by record, and all records in one batch (as CopyStream writes
	// them), which must rotate between the same records.
	for _, tc := range tests {
		for _, batched := range []bool{false, true} {
			tt := tc
			name := tt.name
			if batched {
				name += ", batched"
			}
			t.Run(name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "c", "0.log")
				w, err := NewWriter(path, tt.maxSize, tt.maxFiles)
				if err != nil {
					t.Fatal(err)
				}
				clock := testClock(time.Second)
				if tt.sameSecond {
					clock = func() time.Time { return baseTime }
				}
				w.now = clock
				var batch []byte
				var ends []int
				for i := range tt.lines {
					rec := []byte(raw(i, Stdout, tagFull, fmt.Sprintf("line %04d", i)))
					if batched {
						batch = append(batch, rec...)
						ends = append(ends, len(batch))
					} else if err := w.writeRecord(rec); err != nil {
						t.Fatal(err)
					}
				}
				if batched {
					if err := w.writeRecords(batch, ends); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				rotated, err := rotatedFiles(path)
				if err != nil {
					t.Fatal(err)
				}
				files := append(rotated, rotatedName{path: path})
				if len(files) != tt.wantFiles {
					t.Fatalf("got %d files %v, want %d", len(files), files, tt.wantFiles)
				}
				entries, _ := os.ReadDir(filepath.Dir(path))
				if len(entries) != tt.wantFiles {
					t.Fatalf("directory holds %d entries, want %d", len(entries), tt.wantFiles)
				}
				// The kept files, oldest first, hold the newest lines without a gap, each file within
				// maxSize unless it holds a single record.
				var got []string
				for _, f := range files {
					st, err := os.Stat(f.path)
					if err != nil {
						t.Fatal(err)
					}
					recs := parseFile(t, f.path)
					if st.Size() > tt.maxSize && len(recs) > 1 {
						t.Fatalf("%s is %d bytes, more than max size %d", f.path, st.Size(), tt.maxSize)
					}
					for _, r := range recs {
						got = append(got, string(r.content))
					}
				}
				if len(got) == 0 {
					t.Fatal("no lines kept")
				}
				first := tt.lines - len(got)
				for i, line := range got {
					if want := fmt.Sprintf("line %04d", first+i); line != want {
						t.Fatalf("kept line %d = %q, want %q", i, line, want)
					}
				}
			})
		}
	}
}

func TestNewWriterAppends(t *testing.T) {
	tests := []struct {
		name     string
		existing string
		want     string
	}{
		{"new file", "", "again\n"},
		{"continues", raw(1, Stdout, tagFull, "before"), "before\nagain\n"},
		// The driver died mid-record: the cut record reads as far as it got.
		{"terminates a half-written record", "2024-05-01T12:00:01Z stdout F cut", "cut\nagain\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
			if err != nil {
				t.Fatal(err)
			}
			if err := CopyStream(w, Stdout, strings.NewReader("again\n"), testClock(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := readString(t, path, ReadOptions{Tail: -1})
			if got != tt.want {
				t.Fatalf("read %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewWriterRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	tests := []struct {
		name     string
		maxSize  int64
		maxFiles int
	}{
		{"zero size", 0, 2},
		{"negative size", -1, 2},
		{"one file", 1024, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w, err := NewWriter(path, tt.maxSize, tt.maxFiles); err == nil {
				w.Close()
				t.Fatalf("NewWriter(%d, %d) succeeded", tt.maxSize, tt.maxFiles)
			}
		})
	}
}
