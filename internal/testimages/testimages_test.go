package testimages

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/podagent/podagent/runtime/ociarchive"
)

// needBusybox skips tests on hosts without Debian's busybox-static.
func needBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(HostBusybox); err != nil {
		t.Skipf("%s not available (install Debian's busybox-static): %v", HostBusybox, err)
	}
}

func TestImages(t *testing.T) {
	needBusybox(t)
	dir := t.TempDir()
	pauseBin := filepath.Join(dir, "pause")
	kubiaBin := filepath.Join(dir, "kubia")
	for _, p := range []string{pauseBin, kubiaBin} {
		if err := os.WriteFile(p, []byte("binary "+p), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	imgs, err := Images(pauseBin, kubiaBin, HostBusybox)
	if err != nil {
		t.Fatalf("Images: %v", err)
	}
	byName := map[string]ociarchive.Image{}
	for _, img := range imgs {
		byName[img.Name] = img
	}

	tests := []struct {
		name       string
		entrypoint []string
		cmd        []string
		ports      []string
		wantFiles  map[string]fs.FileMode // path -> mode the image must hold
	}{
		{
			name:       PauseImage,
			entrypoint: []string{"/pause"},
			wantFiles:  map[string]fs.FileMode{"/pause": 0o755},
		},
		{
			name:       KubiaImage,
			entrypoint: []string{"/app/kubia"},
			ports:      []string{"8080/tcp"},
			wantFiles:  map[string]fs.FileMode{"/app/kubia": 0o755},
		},
		{
			name: BusyboxImage,
			cmd:  []string{"sh"},
			wantFiles: map[string]fs.FileMode{
				"/bin/busybox": 0o755,
				"/bin/sh":      fs.ModeSymlink | 0o777,
				"/bin/ls":      fs.ModeSymlink | 0o777,
				"/tmp":         fs.ModeDir | fs.ModeSticky | 0o777,
				"/etc":         fs.ModeDir | 0o755,
				"/root":        fs.ModeDir | 0o700,
				"/var":         fs.ModeDir | 0o755,
			},
		},
	}
	if len(imgs) != len(tests) {
		t.Errorf("Images returned %d images, want %d", len(imgs), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, ok := byName[tt.name]
			if !ok {
				t.Fatalf("image %s missing", tt.name)
			}
			c := img.Config
			if !slices.Equal(c.Entrypoint, tt.entrypoint) || !slices.Equal(c.Cmd, tt.cmd) || !slices.Equal(c.ExposedPorts, tt.ports) {
				t.Errorf("config = %+v, want entrypoint %q cmd %q ports %q", c, tt.entrypoint, tt.cmd, tt.ports)
			}
			files := map[string]ociarchive.File{}
			for _, f := range img.Files {
				files[f.Path] = f
			}
			for p, mode := range tt.wantFiles {
				if f, ok := files[p]; !ok || f.Mode != mode {
					t.Errorf("file %s: present %v mode %v, want mode %v", p, ok, f.Mode, mode)
				}
			}
			if sh, ok := files["/bin/sh"]; ok && sh.Link != "busybox" {
				t.Errorf("/bin/sh links to %q, want busybox", sh.Link)
			}
		})
	}

	// The images must also be acceptable to the archive writer.
	if err := ociarchive.Write(io.Discard, imgs...); err != nil {
		t.Errorf("ociarchive.Write: %v", err)
	}
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles two binaries; skipped in -short mode")
	}
	needBusybox(t)
	dir := t.TempDir()
	out, err := Build(context.Background(), dir)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if want := filepath.Join(dir, ArchiveName); out != want {
		t.Errorf("Build returned %s, want %s", out, want)
	}
	for _, name := range []string{ArchiveName, "pause", "kubia"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", name, err)
		}
	}
}

func TestModuleOf(t *testing.T) {
	tests := []struct{ gomod, want string }{
		{"module github.com/podagent/podagent\n\ngo 1.26\n", modulePath},
		{"// comment\nmodule \"github.com/podagent/podagent\" // quoted\n", modulePath},
		{"go 1.26\n", ""},
	}
	for _, tt := range tests {
		if got := moduleOf([]byte(tt.gomod)); got != tt.want {
			t.Errorf("moduleOf(%q) = %q, want %q", tt.gomod, got, tt.want)
		}
	}
}
