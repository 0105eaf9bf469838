package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// dirState reads a manifest directory and remembers the last good pods of each file, so that a
// file whose new content is broken keeps defining what it defined before.
type dirState struct {
	dir      string
	nodeName string
	lastGood map[string][]*corev1.Pod // per file path
}

func newDirState(dir, nodeName string) *dirState {
	return &dirState{dir: dir, nodeName: nodeName, lastGood: map[string][]*corev1.Pod{}}
}

// scan reads every manifest file in the directory and returns the source's current Update.
// Dotfiles (editors' swap and temporary files) and subdirectories are skipped, as the kubelet
// does. A directory that does not exist holds no pods; one that cannot be read keeps every
// file's last good pods, since nothing is known to have changed.
func (d *dirState) scan() Update {
	paths, err := d.manifestPaths()
	if errors.Is(err, fs.ErrNotExist) {
		clear(d.lastGood)
		return buildUpdate(SourceFile, nil)
	}
	if err != nil {
		parts := d.lastGoodParts()
		parts = append(parts, part{origin: d.dir, err: fmt.Errorf("read manifest directory %s: %w", d.dir, err)})
		return buildUpdate(SourceFile, parts)
	}

	parts := make([]part, 0, len(paths))
	seen := make(map[string]bool, len(paths))
	for _, path := range paths {
		raw, err := readManifestFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the directory was listed
		}
		seen[path] = true
		if err != nil {
			parts = append(parts, part{origin: path, pods: d.lastGood[path], err: err})
			continue
		}
		// A writer that truncates then writes (as most editors saving in place do) leaves the
		// file empty for a moment. Reading it then must not remove the file's pods: an empty
		// file that held pods is taken as not written yet. Removing the file removes them.
		if len(raw) == 0 && len(d.lastGood[path]) > 0 {
			parts = append(parts, part{origin: path, pods: d.lastGood[path],
				err: fmt.Errorf("manifest %s is empty: keeping the pods it defined before (remove the file to remove them)", path)})
			continue
		}
		pods, err := decodePods(raw, SourceFile, path, d.nodeName)
		if err != nil {
			parts = append(parts, part{origin: path, pods: d.lastGood[path], err: err})
			continue
		}
		d.lastGood[path] = pods
		parts = append(parts, part{origin: path, pods: pods})
	}
	for path := range d.lastGood {
		if !seen[path] {
			delete(d.lastGood, path)
		}
	}
	return buildUpdate(SourceFile, parts)
}

// manifestPaths lists the files of the directory that may hold manifests, sorted.
func (d *dirState) manifestPaths() ([]string, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(d.dir, e.Name())
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			// A symlink counts as what it points to; a dangling one holds nothing, like a
			// removed file.
			info, err := os.Stat(path)
			if err != nil {
				continue
			}
			mode = info.Mode().Type()
		}
		// Only regular files: reading a FIFO would block the source.
		if !mode.IsRegular() {
			continue
		}
		paths = append(paths, path)
	}
	sort.Strings(paths)
	return paths, nil
}

// readManifestFile reads a manifest file, up to maxManifestSize.
func readManifestFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", path, err)
	}
	if len(raw) > maxManifestSize {
		return nil, fmt.Errorf("read manifest %s: larger than %d bytes", path, maxManifestSize)
	}
	return raw, nil
}

// lastGoodParts is the current content of the source when the directory cannot be read.
func (d *dirState) lastGoodParts() []part {
	paths := make([]string, 0, len(d.lastGood))
	for path := range d.lastGood {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	parts := make([]part, 0, len(paths))
	for _, path := range paths {
		parts = append(parts, part{origin: path, pods: d.lastGood[path]})
	}
	return parts
}
