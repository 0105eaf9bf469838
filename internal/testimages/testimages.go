// Package testimages builds the images podagent's end-to-end tests and
// `make run` need. There is no registry to pull from, so the pause and kubia
// binaries are compiled from this repo and busybox is taken from the host's
// static build, and all three are packed into one OCI archive for
// containerd to import.
package testimages

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/podagent/podagent/runtime/ociarchive"
)

// Names of the images Build writes.
const (
	PauseImage   = "localhost/podagent/pause:1.0"
	KubiaImage   = "docker.io/luksa/kubia:latest"
	BusyboxImage = "docker.io/library/busybox:latest"
)

// HostBusybox is where Build takes busybox from: Debian's busybox-static,
// which needs no libc inside the image.
const HostBusybox = "/bin/busybox"

// ArchiveName is the file Build writes in its directory.
const ArchiveName = "images.tar"

const (
	modulePath = "github.com/podagent/podagent"
	defaultEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Build compiles cmd/pause and hack/images/kubia (go build, CGO_ENABLED=0,
// into dir) and writes dir/images.tar holding the three images, returning
// its path.
func Build(ctx context.Context, dir string) (string, error) {
	// The go commands run in the repo root, so dir must not stay relative
	// to the caller's working directory.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve image dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create image dir: %w", err)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}

	pauseBin := filepath.Join(dir, "pause")
	kubiaBin := filepath.Join(dir, "kubia")
	if err := goBuild(ctx, root, "./cmd/pause", pauseBin); err != nil {
		return "", err
	}
	if err := goBuild(ctx, root, "./hack/images/kubia", kubiaBin); err != nil {
		return "", err
	}
	imgs, err := Images(pauseBin, kubiaBin, HostBusybox)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, ArchiveName)
	if err := writeArchive(out, imgs); err != nil {
		return "", err
	}
	return out, nil
}

// Images returns the three ociarchive.Image values given the paths of the
// built pause and kubia binaries and of the host's busybox.
func Images(pauseBin, kubiaBin, busyboxBin string) ([]ociarchive.Image, error) {
	pause, err := os.ReadFile(pauseBin)
	if err != nil {
		return nil, fmt.Errorf("read pause binary: %w", err)
	}
	kubia, err := os.ReadFile(kubiaBin)
	if err != nil {
		return nil, fmt.Errorf("read kubia binary: %w", err)
	}
	busybox, err := busyboxImage(busyboxBin)
	if err != nil {
		return nil, err
	}
	return []ociarchive.Image{
		{
			Name:   PauseImage,
			Files:  []ociarchive.File{{Path: "/pause", Mode: 0o755, Data: pause}},
			Config: ociarchive.Config{Entrypoint: []string{"/pause"}},
		},
		{
			Name: KubiaImage,
			// On busybox's userland, as the real image is on node's Debian: `kubectl exec` into
			// it finds sh, cat, ls and hostname, and `kubectl cp` finds tar.
			Files: append(slices.Clone(busybox.Files), ociarchive.File{Path: "/app/kubia", Mode: 0o755, Data: kubia}),
			Config: ociarchive.Config{
				Entrypoint:   []string{"/app/kubia"},
				Env:          []string{defaultEnv},
				WorkingDir:   "/app",
				ExposedPorts: []string{"8080/tcp"},
			},
		},
		busybox,
	}, nil
}

// busyboxImage lays busybox out like the Docker Hub image: one binary in
// /bin with a symlink per applet, plus the directories and account files
// shell-based test pods expect.
func busyboxImage(bin string) (ociarchive.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return ociarchive.Image{}, fmt.Errorf("read busybox binary: %w", err)
	}
	applets, err := busyboxApplets(bin)
	if err != nil {
		return ociarchive.Image{}, err
	}
	files := []ociarchive.File{
		{Path: "/bin/busybox", Mode: 0o755, Data: data},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/etc", Mode: fs.ModeDir | 0o755},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/var", Mode: fs.ModeDir | 0o755},
		// Without these, id and whoami cannot name uid 0.
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, a := range applets {
		files = append(files, ociarchive.File{Path: "/bin/" + a, Mode: fs.ModeSymlink | 0o777, Link: "busybox"})
	}
	return ociarchive.Image{
		Name:   BusyboxImage,
		Files:  files,
		Config: ociarchive.Config{Cmd: []string{"sh"}, Env: []string{defaultEnv}},
	}, nil
}

// busyboxApplets returns the applet names bin was built with, as printed
// by `busybox --list`, leaving out "busybox" itself, which is the binary.
func busyboxApplets(bin string) ([]string, error) {
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list applets of %s: %w", bin, err)
	}
	var applets []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		a := strings.TrimSpace(sc.Text())
		if a == "" || a == "busybox" {
			continue
		}
		// A name with a slash would escape /bin; busybox never prints
		// one, but the list comes from whatever binary we were given.
		if strings.Contains(a, "/") {
			return nil, fmt.Errorf("list applets of %s: unexpected applet name %q", bin, a)
		}
		applets = append(applets, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read applet list of %s: %w", bin, err)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("list applets of %s: none printed", bin)
	}
	return applets, nil
}

// repoRoot walks up from the working directory to the go.mod of this
// module, so Build works from any package's test directory.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repo root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && moduleOf(data) == modulePath {
			return dir, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("find repo root: %w", err)
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("find repo root: no go.mod of module %s above %s", modulePath, wd)
		}
	}
}

// moduleOf returns the module path declared in a go.mod file.
func moduleOf(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok {
			rest, _, _ = strings.Cut(rest, "//")
			return strings.Trim(strings.TrimSpace(rest), `"`+"`")
		}
	}
	return ""
}

// goBuild builds pkg in root as a static binary at out. GOOS and GOARCH
// are pinned so the binary matches the platform ociarchive records.
func goBuild(ctx context.Context, root, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, output)
	}
	return nil
}

// writeArchive writes the archive next to its final path and renames it
// into place, so a concurrent reader never sees a half-written file.
func writeArchive(out string, imgs []ociarchive.Image) error {
	f, err := os.CreateTemp(filepath.Dir(out), ArchiveName+".*")
	if err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	defer os.Remove(f.Name()) // no-op after a successful rename

	w := bufio.NewWriter(f)
	if err := ociarchive.Write(w, imgs...); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", out, err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("move %s into place: %w", out, err)
	}
	return nil
}
