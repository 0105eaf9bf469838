package logs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// baseTime is the first timestamp of test logs.
var baseTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// at is the timestamp of second i of a test log.
func at(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Second) }

// testClock returns a goroutine-safe clock that advances by step at each call, for CopyStream.
func testClock(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := baseTime
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

// raw is one record as the file holds it.
func raw(i int, stream, tag, content string) string {
	return string(appendRecord(nil, at(i), stream, tag == tagPartial, []byte(content)))
}

// full is a P record's content: maxLineSize bytes, as containerd cuts them.
func full(c byte) string { return strings.Repeat(string(c), maxLineSize) }

// writeFile writes a log file made of the given text and returns its path.
func writeFile(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// readString reads the log at path with opts and returns the output.
func readString(t testing.TB, path string, opts ReadOptions) string {
	t.Helper()
	var out bytes.Buffer
	if err := Read(context.Background(), path, opts, &out); err != nil {
		t.Fatalf("Read(%s): %v", path, err)
	}
	return out.String()
}

// parseFile parses every record of the file at path.
func parseFile(t testing.TB, path string) []record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []record
	for _, line := range bytes.SplitAfter(data, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		if line[len(line)-1] != '\n' {
			t.Fatalf("%s ends in half a record %q", path, line)
		}
		r, err := parseRecord(line[:len(line)-1])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// syncBuffer is an output that a test reads while Read writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond until it holds, failing the test if timeout passes first.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	if !waitUntil(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// waitUntil polls cond until it holds (true) or timeout passes (false).
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}
