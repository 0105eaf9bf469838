package logs

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// DefaultMaxSize is the size at which a container's log file is rotated: 10Mi, the kubelet's
	// containerLogMaxSize default.
	DefaultMaxSize = 10 << 20
	// DefaultMaxFiles is how many log files of a container are kept, the current one included: 5,
	// the kubelet's containerLogMaxFiles default.
	DefaultMaxFiles = 5

	// rotatedTimeFormat is the kubelet's suffix of a rotated log file, <path>.YYYYMMDD-hhmmss.
	rotatedTimeFormat = "20060102-150405"
)

// rotatedName is one rotated log file: <path>.<stamp> or <path>.<stamp>.<seq>. seq tells apart
// files rotated within the same second, which the kubelet never does (it rotates at most every
// 10s) but a size check on every write can.
type rotatedName struct {
	path  string
	stamp string
	seq   int
}

// rotatedFiles lists the rotated files of the log file path, oldest first. Other files in the
// directory, the kubelet's compressed (.gz) or temporary (.tmp) ones included, are ignored.
func rotatedFiles(path string) ([]rotatedName, error) {
	dir, base := filepath.Split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list rotated files of container log %s: %w", path, err)
	}
	var files []rotatedName
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok {
			continue
		}
		stamp, seq, ok := parseRotatedSuffix(suffix)
		if !ok {
			continue
		}
		files = append(files, rotatedName{path: filepath.Join(dir, e.Name()), stamp: stamp, seq: seq})
	}
	// Sort numerically on seq: by name, ".10" would come before ".2".
	slices.SortFunc(files, func(a, b rotatedName) int {
		return cmp.Or(strings.Compare(a.stamp, b.stamp), cmp.Compare(a.seq, b.seq))
	})
	return files, nil
}

// parseRotatedSuffix parses "YYYYMMDD-hhmmss" or "YYYYMMDD-hhmmss.n" with n >= 1.
func parseRotatedSuffix(s string) (stamp string, seq int, ok bool) {
	stamp, n, hasSeq := strings.Cut(s, ".")
	if _, err := time.Parse(rotatedTimeFormat, stamp); err != nil {
		return "", 0, false
	}
	if !hasSeq {
		return stamp, 0, true
	}
	seq, err := strconv.Atoi(n)
	if err != nil || seq < 1 || strconv.Itoa(seq) != n {
		return "", 0, false
	}
	return stamp, seq, true
}

// nextRotatedName names the file that path is rotated to at now, given its rotated files (oldest
// first): <path>.<UTC now>, with a .n suffix past the newest file of the same second. If the clock
// went back, the newest file's stamp is reused so that names keep sorting in rotation order, which
// pruning and followers rely on.
func nextRotatedName(path string, rotated []rotatedName, now time.Time) string {
	stamp := now.UTC().Format(rotatedTimeFormat)
	seq := 0
	if n := len(rotated); n > 0 {
		newest := rotated[n-1]
		if newest.stamp >= stamp {
			stamp = newest.stamp
			seq = newest.seq + 1
		}
	}
	if seq == 0 {
		return path + "." + stamp
	}
	return path + "." + stamp + "." + strconv.Itoa(seq)
}
