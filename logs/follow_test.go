package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// followTimeout bounds every wait in follow tests; they end as soon as their condition holds.
const followTimeout = 30 * time.Second

// lineCollector is Read's output in a follow test: it counts the complete lines written so far.
type lineCollector struct {
	// hold, when set, blocks the writes after the first holdAfter lines until it is closed.
	hold      chan struct{}
	holdAfter int

	mu    sync.Mutex
	buf   strings.Builder
	lines int
}

func (c *lineCollector) Write(p []byte) (int, error) {
	if c.hold != nil && c.count() >= c.holdAfter {
		<-c.hold
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	c.lines += strings.Count(string(p), "\n")
	return len(p), nil
}

func (c *lineCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

func (c *lineCollector) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// startRead runs Read in the background; wait returns its result, failing the test past the
// follow timeout.
func startRead(t testing.TB, ctx context.Context, path string, opts ReadOptions, out io.Writer) (wait func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- Read(ctx, path, opts, out) }()
	return func() error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(followTimeout):
			t.Fatalf("Read did not return within %v", followTimeout)
			return nil
		}
	}
}

// numbered is line i of stream, padded to size bytes.
func numbered(stream string, i, size int) string {
	s := fmt.Sprintf("%s %06d ", stream, i)
	return s + strings.Repeat("z", max(0, size-len(s)))
}

// TestFollow writes numbered lines to stdout and stderr from a goroutine, through CopyStream and a
// rotating Writer, while Read follows; once the container stops, Read must have shown every line
// exactly once and each stream in order.
func TestFollow(t *testing.T) {
	tests := []struct {
		name     string
		maxSize  int64
		maxFiles int
		before   int // lines per stream written before Read starts
		lines    int // lines per stream in all
		lineLen  int
		// batch is how many lines per stream are written before waiting for Read to show them, so
		// that it can keep up with pruning; 0 never waits.
		batch int
		// stall blocks Read's output until everything is written, so that it falls many rotations
		// behind.
		stall bool
		tail  int64 // -1 or 1: with 1, Read first shows the last initial stderr line
	}{
		{name: "new lines", maxSize: DefaultMaxSize, maxFiles: DefaultMaxFiles, lines: 300, lineLen: 20, tail: -1},
		{name: "existing and new lines", maxSize: DefaultMaxSize, maxFiles: DefaultMaxFiles, before: 100, lines: 300, lineLen: 20, tail: -1},
		{name: "tail then new lines", maxSize: DefaultMaxSize, maxFiles: DefaultMaxFiles, before: 100, lines: 300, lineLen: 20, tail: 1},
		{name: "rotations, reader keeps up, two files kept", maxSize: 1 << 10, maxFiles: 2, before: 5, lines: 600, lineLen: 20, batch: 4, tail: -1},
		{name: "rotations, reader lags", maxSize: 1 << 10, maxFiles: 100000, lines: 1500, lineLen: 20, tail: -1},
		{name: "rotations, reader stalled many files behind", maxSize: 1 << 10, maxFiles: 100000, lines: 1500, lineLen: 20, stall: true, tail: -1},
		{name: "long lines cut across rotations", maxSize: 20 << 10, maxFiles: 100000, lines: 20, lineLen: 40 << 10, tail: -1},
		{name: "long lines, reader stalled", maxSize: 20 << 10, maxFiles: 100000, lines: 20, lineLen: 40 << 10, stall: true, tail: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ns_pod_uid", "c", "0.log")
			w, err := NewWriter(path, tt.maxSize, tt.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var (
				pipes   = map[string]*io.PipeWriter{}
				copiers sync.WaitGroup
				clock   = testClock(time.Microsecond)
			)
			for _, stream := range []string{Stdout, Stderr} {
				pr, pw := io.Pipe()
				pipes[stream] = pw
				copiers.Go(func() {
					if err := CopyStream(w, stream, pr, clock); err != nil {
						t.Error(err)
					}
				})
			}
			write := func(from, to int) {
				for i := from; i < to; i++ {
					for _, stream := range []string{Stdout, Stderr} {
						if _, err := io.WriteString(pipes[stream], numbered(stream, i, tt.lineLen)+"\n"); err != nil {
							t.Error(err)
						}
					}
				}
			}
			// Before Read starts: a marker line, then the first lines of each stream, all in the
			// first file. Read shows them (or their tail) first, which tells that it has opened that
			// file before anything else is written.
			initial := map[string]string{Stdout: "start\n"}
			for _, stream := range []string{Stdout, Stderr} {
				for i := range tt.before {
					initial[stream] += numbered(stream, i, tt.lineLen) + "\n"
				}
				if err := CopyStream(w, stream, strings.NewReader(initial[stream]), clock); err != nil {
					t.Fatal(err)
				}
			}
			var running atomic.Bool
			running.Store(true)
			out := &lineCollector{}
			wait := startRead(t, context.Background(), path, ReadOptions{Tail: tt.tail, Follow: true, Running: running.Load}, out)
			shownFirst := 1 + 2*tt.before
			if tt.tail >= 0 {
				shownFirst = int(tt.tail)
			}
			eventually(t, followTimeout, func() bool { return out.count() == shownFirst }, "the lines written before Read")
			if tt.stall {
				out.holdAfter = shownFirst + 1
				out.hold = make(chan struct{})
			}

			go func() {
				for i := tt.before; i < tt.lines; {
					n := tt.lines - i
					if tt.batch > 0 {
						n = min(n, tt.batch)
					}
					write(i, i+n)
					i += n
					if tt.batch > 0 {
						want := shownFirst + 2*(i-tt.before)
						if !waitUntil(followTimeout, func() bool { return out.count() >= want }) {
							t.Errorf("Read did not catch up with line %d within %v", i, followTimeout)
							break
						}
					}
				}
				for _, pw := range pipes {
					pw.Close()
				}
				copiers.Wait()
				if tt.stall {
					close(out.hold)
				}
				running.Store(false)
			}()
			if err := wait(); err != nil {
				t.Fatalf("Read: %v", err)
			}
			// Read shows the marker, or the tail of the initial lines: the last lines of stderr.
			output, skipped := strings.CutPrefix(out.String(), "start\n")
			if skipped != (tt.tail < 0) {
				t.Fatalf("output begins with %.40q", output)
			}
			first := map[string]int{Stdout: 0, Stderr: 0}
			if tt.tail >= 0 {
				first = map[string]int{Stdout: tt.before, Stderr: tt.before - int(tt.tail)}
			}
			checkNumbered(t, output, first, tt.lines, tt.lineLen)
		})
	}
}

// checkNumbered checks that output holds, for each stream, its lines first[stream]..n-1 exactly
// once and in order.
func checkNumbered(t *testing.T, output string, first map[string]int, n, lineLen int) {
	t.Helper()
	if !strings.HasSuffix(output, "\n") {
		t.Fatalf("output does not end in a newline: %.100q", output[max(0, len(output)-100):])
	}
	next := maps.Clone(first)
	for i, line := range strings.Split(strings.TrimSuffix(output, "\n"), "\n") {
		stream, rest, _ := strings.Cut(line, " ")
		num, _, _ := strings.Cut(rest, " ")
		got, err := strconv.Atoi(num)
		if err != nil || (stream != Stdout && stream != Stderr) {
			t.Fatalf("output line %d is not a numbered line: %.100q", i, line)
		}
		if got != next[stream] {
			t.Fatalf("output line %d is %s line %d, want %s line %d", i, stream, got, stream, next[stream])
		}
		if want := numbered(stream, got, lineLen); line != want {
			t.Fatalf("output line %d = %.60q (%d bytes), want %.60q (%d bytes)", i, line, len(line), want, len(want))
		}
		next[stream]++
	}
	if next[Stdout] != n || next[Stderr] != n {
		t.Fatalf("output ends at stdout line %d and stderr line %d, want %d", next[Stdout], next[Stderr], n)
	}
}

// TestFollowStops checks that following a stopped container reads to the end and returns.
func TestFollowStops(t *testing.T) {
	file := raw(1, Stdout, "F", "a") + raw(2, Stderr, "F", "b") + raw(3, Stdout, "P", "no newline")
	tests := []struct {
		name    string
		running func() bool
	}{
		{"running nil", nil},
		{"not running", func() bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &lineCollector{}
			wait := startRead(t, context.Background(), writeFile(t, file), ReadOptions{Tail: -1, Follow: true, Running: tt.running}, out)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			if got, want := out.String(), "a\nb\nno newline"; got != want {
				t.Fatalf("Read = %q, want %q", got, want)
			}
		})
	}
}

// TestFollowUntilStopped follows a running container, which writes a last line and stops.
func TestFollowUntilStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := CopyStream(w, Stdout, strings.NewReader("one\n"), nil); err != nil {
		t.Fatal(err)
	}
	var running atomic.Bool
	running.Store(true)
	out := &lineCollector{}
	wait := startRead(t, context.Background(), path, ReadOptions{Tail: -1, Follow: true, Running: running.Load}, out)
	eventually(t, followTimeout, func() bool { return out.count() == 1 }, "the first line")
	if err := CopyStream(w, Stderr, strings.NewReader("two\nlast words"), nil); err != nil {
		t.Fatal(err)
	}
	running.Store(false)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "one\ntwo\nlast words"; got != want {
		t.Fatalf("Read = %q, want %q", got, want)
	}
}

func TestFollowContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineCollector{}
	path := writeFile(t, raw(1, Stdout, "F", "a"))
	wait := startRead(t, ctx, path, ReadOptions{Tail: -1, Follow: true, Running: func() bool { return true }}, out)
	eventually(t, followTimeout, func() bool { return out.count() == 1 }, "the line")
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v, want context.Canceled", err)
	}
}

func TestFollowLimitBytes(t *testing.T) {
	path := writeFile(t, raw(1, Stdout, "F", "abc"))
	out := &lineCollector{}
	wait := startRead(t, context.Background(), path, ReadOptions{Tail: -1, Follow: true, LimitBytes: 6, Running: func() bool { return true }}, out)
	w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := CopyStream(w, Stdout, strings.NewReader("defgh\n"), nil); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "abc\nde"; got != want {
		t.Fatalf("Read = %q, want %q", got, want)
	}
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// BenchmarkFollowLatency measures the time from writing a record to a follower writing out its
// line: ns/op is the mean latency.
func BenchmarkFollowLatency(b *testing.B) {
	path := filepath.Join(b.TempDir(), "0.log")
	w, err := NewWriter(path, DefaultMaxSize, DefaultMaxFiles)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	got := make(chan struct{}, 1)
	out := writerFunc(func(p []byte) (int, error) {
		got <- struct{}{}
		return len(p), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	wait := startRead(b, ctx, path, ReadOptions{Tail: -1, Follow: true, Running: func() bool { return true }}, out)
	rec := appendRecord(nil, baseTime, Stdout, false, []byte("a line of a container's log"))
	if err := w.writeRecord(rec); err != nil {
		b.Fatal(err)
	}
	<-got // the follower is up
	var worst time.Duration
	for b.Loop() {
		start := time.Now()
		if err := w.writeRecord(rec); err != nil {
			b.Fatal(err)
		}
		<-got
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Nanoseconds()), "max-ns")
	cancel()
	if err := wait(); !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
}
