package logs

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// tagged is a record's tag and content, as a test expects it on disk.
type tagged struct {
	tag     string
	content string
}

func TestCopyStream(t *testing.T) {
	long := strings.Repeat("0123456789", 100<<10/10) // 100 KiB
	tests := []struct {
		name  string
		input string
		want  []tagged
	}{
		{"lines", "a\nb\n", []tagged{{"F", "a"}, {"F", "b"}}},
		{"empty input", "", nil},
		{"empty line", "\n\n", []tagged{{"F", ""}, {"F", ""}}},
		{"last line without newline is partial", "a\nb", []tagged{{"F", "a"}, {"P", "b"}}},
		{"crlf stripped", "a\r\nb\n", []tagged{{"F", "a"}, {"F", "b"}}},
		{"lone cr kept", "a\rb\n", []tagged{{"F", "a\rb"}}},
		{"crlf across read buffer", strings.Repeat("a", copyBufSize-1) + "\r\nb\n",
			[]tagged{{"F", strings.Repeat("a", copyBufSize-1)}, {"F", "b"}}},
		{"cr at end of read buffer", strings.Repeat("a", copyBufSize-1) + "\rb\n",
			[]tagged{{"F", strings.Repeat("a", copyBufSize-1) + "\rb"}}},
		{"exactly max line", full('x') + "\n", []tagged{{"F", full('x')}}},
		{"max line plus one", full('x') + "y\n", []tagged{{"P", full('x')}, {"F", "y"}}},
		{"twice max line", full('x') + full('y') + "\n", []tagged{{"P", full('x')}, {"F", full('y')}}},
		{"100 KiB line", long + "\n", append(splitTagged(long[:6*maxLineSize], "P"), tagged{"F", long[6*maxLineSize:]})},
		{"long last line without newline", full('x') + "tail", []tagged{{"P", full('x')}, {"P", "tail"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
			if err != nil {
				t.Fatal(err)
			}
			if err := CopyStream(w, Stderr, strings.NewReader(tt.input), testClock(time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			recs := parseFile(t, path)
			if len(recs) != len(tt.want) {
				t.Fatalf("got %d records, want %d", len(recs), len(tt.want))
			}
			for i, r := range recs {
				tag := tagFull
				if r.partial {
					tag = tagPartial
				}
				if tag != tt.want[i].tag || string(r.content) != tt.want[i].content || r.stream != Stderr {
					t.Fatalf("record %d = %s %s %.40q (%d bytes), want %s %.40q (%d bytes)", i, r.stream, tag,
						r.content, len(r.content), tt.want[i].tag, tt.want[i].content, len(tt.want[i].content))
				}
				if want := baseTime.Add(time.Duration(i+1) * time.Millisecond); !r.time.Equal(want) {
					t.Fatalf("record %d time = %v, want %v", i, r.time, want)
				}
			}
		})
	}
}

// splitTagged cuts s into maxLineSize records tagged tag.
func splitTagged(s, tag string) []tagged {
	var out []tagged
	for len(s) > 0 {
		n := min(len(s), maxLineSize)
		out = append(out, tagged{tag, s[:n]})
		s = s[n:]
	}
	return out
}

func TestCopyStreamReadError(t *testing.T) {
	boom := errors.New("boom")
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := io.MultiReader(strings.NewReader("a\nhalf"), iotest.ErrReader(boom))
	if err := CopyStream(w, Stdout, r, nil); !errors.Is(err, boom) {
		t.Fatalf("CopyStream error = %v, want %v", err, boom)
	}
	recs := parseFile(t, path)
	if len(recs) != 2 || string(recs[1].content) != "half" || !recs[1].partial {
		t.Fatalf("records = %+v, want F a and P half", recs)
	}
}

func TestCopyStreamDrainsOnWriteError(t *testing.T) {
	w, err := NewWriter(filepath.Join(t.TempDir(), "0.log"), DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := strings.NewReader(strings.Repeat("line\n", 10000))
	if err := CopyStream(w, Stdout, r, nil); err == nil {
		t.Fatal("CopyStream to a closed writer succeeded")
	}
	if r.Len() != 0 {
		t.Fatalf("CopyStream left %d bytes unread: a container would block on its pipe", r.Len())
	}
}

func TestCopyStreamRejectsStream(t *testing.T) {
	w, err := NewWriter(filepath.Join(t.TempDir(), "0.log"), DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := CopyStream(w, "stdin", strings.NewReader("x\n"), nil); err == nil {
		t.Fatal("CopyStream accepted stream stdin")
	}
}

// TestCopyStreamConcurrent copies stdout and stderr at once through one Writer with rotation:
// every record must stay whole and each stream's lines in order.
func TestCopyStreamConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := NewWriter(path, 4<<10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	for _, stream := range []string{Stdout, Stderr} {
		wg.Go(func() {
			var b strings.Builder
			for i := range n {
				b.WriteString(stream + " " + strings.Repeat("x", i%50) + "\n")
			}
			if err := CopyStream(w, stream, strings.NewReader(b.String()), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	w.Close()
	rotated, err := rotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, f := range append(rotated, rotatedName{path: path}) {
		for _, r := range parseFile(t, f.path) {
			want := r.stream + " " + strings.Repeat("x", counts[r.stream]%50)
			if string(r.content) != want {
				t.Fatalf("%s: record %d of %s = %q, want %q", f.path, counts[r.stream], r.stream, r.content, want)
			}
			counts[r.stream]++
		}
	}
	if counts[Stdout] != n || counts[Stderr] != n {
		t.Fatalf("got %v records, want %d of each stream", counts, n)
	}
}
