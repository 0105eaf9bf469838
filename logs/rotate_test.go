package logs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	names := []string{
		"0.log", "1.log", "0.log.tmp", "0.log.20240501-120000.gz", "0.log.2024-05-01", "0.log.20240501-120000.0",
		"0.log.20240501-120000.01", "1.log.20240501-110000",
		"0.log.20240501-120000.10", "0.log.20240501-120000.2", "0.log.20240501-120000", "0.log.20240430-235959",
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	files, err := rotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f.path))
	}
	want := []string{"0.log.20240430-235959", "0.log.20240501-120000", "0.log.20240501-120000.2", "0.log.20240501-120000.10"}
	if !slices.Equal(got, want) {
		t.Fatalf("rotatedFiles = %v, want %v", got, want)
	}
}

func TestNextRotatedName(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		rotated []rotatedName
		now     time.Time
		want    string
	}{
		{"first", nil, now, "0.log.20240501-120000"},
		{"utc", nil, now.In(time.FixedZone("", -7*3600)), "0.log.20240501-120000"},
		{"older exists", []rotatedName{{stamp: "20240501-115959"}}, now, "0.log.20240501-120000"},
		{"same second", []rotatedName{{stamp: "20240501-120000"}}, now, "0.log.20240501-120000.1"},
		{"same second again", []rotatedName{{stamp: "20240501-120000"}, {stamp: "20240501-120000", seq: 9}}, now, "0.log.20240501-120000.10"},
		{"clock went back", []rotatedName{{stamp: "20240501-120005", seq: 2}}, now, "0.log.20240501-120005.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextRotatedName("0.log", tt.rotated, tt.now); got != tt.want {
				t.Fatalf("nextRotatedName = %q, want %q", got, tt.want)
			}
		})
	}
}
