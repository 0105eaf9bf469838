package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one tar header read back, reduced to what the tests compare.
type entry struct {
	Name     string
	Typeflag byte
	Mode     int64
	Link     string
	Data     string
}

// readTar returns the entries of an uncompressed tar in archive order and
// fails the test on any header that breaks the determinism guarantees.
func readTar(t *testing.T, data []byte) []entry {
	t.Helper()
	var entries []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if hdr.ModTime.Unix() != 0 || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("entry %q: mtime %v uid %d gid %d, want epoch 0 and root", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %q: %v", hdr.Name, err)
		}
		entries = append(entries, entry{hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Linkname, string(body)})
	}
}

// image is one image read back from an archive, with its layer decoded.
type image struct {
	Desc     ocispec.Descriptor
	Manifest ocispec.Manifest
	Config   ocispec.Image
	Layer    []entry
}

// readArchive parses an archive written by Write, checking on the way that
// every blob is stored under its own digest and every descriptor matches
// the blob it points to.
func readArchive(t *testing.T, data []byte) []image {
	t.Helper()
	files := map[string][]byte{}
	for _, e := range readTar(t, data) {
		if e.Typeflag == tar.TypeReg {
			files[e.Name] = []byte(e.Data)
		}
	}
	for name, blob := range files {
		if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
			if got := digest.FromBytes(blob).Encoded(); got != hex {
				t.Errorf("blob %s has digest %s", name, got)
			}
		}
	}
	if got, want := string(files["oci-layout"]), `{"imageLayoutVersion":"1.0.0"}`; got != want {
		t.Errorf("oci-layout = %s, want %s", got, want)
	}

	// blob returns the content desc points to after checking its size.
	blob := func(desc ocispec.Descriptor) []byte {
		t.Helper()
		b, ok := files[path.Join("blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded())]
		if !ok {
			t.Fatalf("blob %s missing from archive", desc.Digest)
		}
		if int64(len(b)) != desc.Size {
			t.Errorf("blob %s: size %d, descriptor says %d", desc.Digest, len(b), desc.Size)
		}
		return b
	}
	decode := func(what string, b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("decode %s: %v", what, err)
		}
	}

	var index ocispec.Index
	decode("index.json", files["index.json"], &index)
	if index.SchemaVersion != 2 || index.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index: schema %d media type %q", index.SchemaVersion, index.MediaType)
	}
	var imgs []image
	for _, desc := range index.Manifests {
		img := image{Desc: desc}
		if desc.MediaType != ocispec.MediaTypeImageManifest {
			t.Errorf("index entry %s: media type %q", desc.Digest, desc.MediaType)
		}
		decode("manifest", blob(desc), &img.Manifest)
		decode("config", blob(img.Manifest.Config), &img.Config)
		if n := len(img.Manifest.Layers); n != 1 {
			t.Fatalf("manifest %s has %d layers, want 1", desc.Digest, n)
		}
		layerDesc := img.Manifest.Layers[0]
		if layerDesc.MediaType != ocispec.MediaTypeImageLayerGzip {
			t.Errorf("layer media type %q", layerDesc.MediaType)
		}
		zr, err := gzip.NewReader(bytes.NewReader(blob(layerDesc)))
		if err != nil {
			t.Fatalf("open layer %s: %v", layerDesc.Digest, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("decompress layer %s: %v", layerDesc.Digest, err)
		}
		if got := img.Config.RootFS.DiffIDs; len(got) != 1 || got[0] != digest.FromBytes(raw) {
			t.Errorf("config diffIDs %v, want [%s]", got, digest.FromBytes(raw))
		}
		img.Layer = readTar(t, raw)
		imgs = append(imgs, img)
	}
	return imgs
}

// write runs Write and fails the test on error.
func write(t *testing.T, imgs ...Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, imgs...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestLayerContents(t *testing.T) {
	tests := []struct {
		name  string
		files []File
		want  []entry
	}{
		{
			name: "empty layer",
		},
		{
			name:  "implicit parents",
			files: []File{{Path: "/usr/local/bin/app", Mode: 0o755, Data: []byte("bin")}},
			want: []entry{
				{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "usr/local/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "usr/local/bin/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "usr/local/bin/app", Typeflag: tar.TypeReg, Mode: 0o755, Data: "bin"},
			},
		},
		{
			name: "explicit directory mode wins over implicit",
			files: []File{
				{Path: "/root/.profile", Mode: 0o600, Data: []byte("x")},
				{Path: "/root", Mode: fs.ModeDir | 0o700},
			},
			want: []entry{
				{Name: "root/", Typeflag: tar.TypeDir, Mode: 0o700},
				{Name: "root/.profile", Typeflag: tar.TypeReg, Mode: 0o600, Data: "x"},
			},
		},
		{
			name: "symlinks and special bits, sorted",
			files: []File{
				{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
				{Path: "/bin/sh", Mode: fs.ModeSymlink | 0o777, Link: "busybox"},
				{Path: "/bin/su", Mode: fs.ModeSetuid | fs.ModeSetgid | 0o755, Data: []byte("su")},
				{Path: "/bin/busybox", Mode: 0o755, Data: []byte("bb")},
			},
			want: []entry{
				{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Data: "bb"},
				{Name: "bin/sh", Typeflag: tar.TypeSymlink, Mode: 0o777, Link: "busybox"},
				{Name: "bin/su", Typeflag: tar.TypeReg, Mode: 0o6755, Data: "su"},
				{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imgs := readArchive(t, write(t, Image{Name: "example.com/test:1", Files: tt.files}))
			if len(imgs) != 1 {
				t.Fatalf("got %d images, want 1", len(imgs))
			}
			if got := imgs[0].Layer; !slices.Equal(got, tt.want) {
				t.Errorf("layer entries:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestIndexManifestAndConfig(t *testing.T) {
	imgs := []Image{
		{
			Name:  "docker.io/luksa/kubia:latest",
			Files: []File{{Path: "/app/kubia", Mode: 0o755, Data: []byte("kubia")}},
			Config: Config{
				Entrypoint:   []string{"/app/kubia"},
				Cmd:          []string{"--flag"},
				Env:          []string{"PATH=/bin"},
				WorkingDir:   "/app",
				ExposedPorts: []string{"8080/tcp", "53/udp"},
				User:         "1000:1000",
			},
		},
		{
			Name:   "localhost/podagent/pause:1.0",
			Files:  []File{{Path: "/pause", Mode: 0o755, Data: []byte("pause")}},
			Config: Config{Entrypoint: []string{"/pause"}},
		},
	}
	got := readArchive(t, write(t, imgs...))
	if len(got) != len(imgs) {
		t.Fatalf("got %d images, want %d", len(got), len(imgs))
	}
	for i, want := range imgs {
		img := got[i]
		t.Run(want.Name, func(t *testing.T) {
			for _, key := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
				if v := img.Desc.Annotations[key]; v != want.Name {
					t.Errorf("annotation %s = %q, want %q", key, v, want.Name)
				}
			}
			if p := img.Desc.Platform; p == nil || p.OS != "linux" || p.Architecture != runtime.GOARCH {
				t.Errorf("index platform = %+v, want linux/%s", p, runtime.GOARCH)
			}
			if img.Config.OS != "linux" || img.Config.Architecture != runtime.GOARCH {
				t.Errorf("config platform = %s/%s, want linux/%s", img.Config.OS, img.Config.Architecture, runtime.GOARCH)
			}
			if img.Manifest.SchemaVersion != 2 || img.Manifest.MediaType != ocispec.MediaTypeImageManifest ||
				img.Manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
				t.Errorf("manifest header: %+v", img.Manifest)
			}
			if img.Config.RootFS.Type != "layers" {
				t.Errorf("rootfs type %q, want layers", img.Config.RootFS.Type)
			}
			c := img.Config.Config
			var ports []string
			for p := range c.ExposedPorts {
				ports = append(ports, p)
			}
			slices.Sort(ports)
			wantPorts := slices.Sorted(slices.Values(want.Config.ExposedPorts))
			if !slices.Equal(c.Entrypoint, want.Config.Entrypoint) || !slices.Equal(c.Cmd, want.Config.Cmd) ||
				!slices.Equal(c.Env, want.Config.Env) || c.WorkingDir != want.Config.WorkingDir ||
				c.User != want.Config.User || !slices.Equal(ports, wantPorts) {
				t.Errorf("config = %+v, want %+v", c, want.Config)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	files := []File{
		{Path: "/b", Mode: 0o644, Data: []byte("b")},
		{Path: "/a/x", Mode: fs.ModeSymlink | 0o777, Link: "../b"},
		{Path: "/a/y", Mode: 0o600, Data: []byte("y")},
	}
	reversed := slices.Clone(files)
	slices.Reverse(reversed)

	first := write(t, Image{Name: "example.com/det:1", Files: files})
	second := write(t, Image{Name: "example.com/det:1", Files: reversed})
	if !bytes.Equal(first, second) {
		t.Fatal("same files in a different order gave a different archive")
	}
	changed := write(t, Image{Name: "example.com/det:1", Files: append(slices.Clone(files), File{Path: "/c", Mode: 0o644})})
	if bytes.Equal(first, changed) {
		t.Fatal("different files gave the same archive")
	}
}

func TestSharedBlobsStoredOnce(t *testing.T) {
	files := []File{{Path: "/same", Mode: 0o644, Data: []byte("same")}}
	data := write(t, Image{Name: "example.com/a:1", Files: files}, Image{Name: "example.com/b:1", Files: files})
	var blobs []string
	for _, e := range readTar(t, data) {
		if e.Typeflag == tar.TypeReg && strings.HasPrefix(e.Name, "blobs/") {
			blobs = append(blobs, e.Name)
		}
	}
	// One shared layer, one shared config, one shared manifest: the names
	// live only in index.json.
	if len(blobs) != 3 {
		t.Errorf("got %d blobs %v, want 3", len(blobs), blobs)
	}
	imgs := readArchive(t, data)
	if imgs[0].Desc.Digest != imgs[1].Desc.Digest {
		t.Errorf("identical images have different manifests %s and %s", imgs[0].Desc.Digest, imgs[1].Desc.Digest)
	}
}

func TestWriteErrors(t *testing.T) {
	file := func(p string) File { return File{Path: p, Mode: 0o644} }
	tests := []struct {
		name    string
		imgs    []Image
		wantErr string
	}{
		{"no images", nil, "no images"},
		{"empty name", []Image{{Name: ""}}, "invalid image name"},
		{"name with space", []Image{{Name: "a b"}}, "invalid image name"},
		{"duplicate name", []Image{{Name: "x/y:1"}, {Name: "x/y:1"}}, "given twice"},
		{"relative path", []Image{{Name: "x/y:1", Files: []File{file("bin/sh")}}}, "must be absolute"},
		{"unclean path", []Image{{Name: "x/y:1", Files: []File{file("/bin/../sh")}}}, "must be absolute and clean"},
		{"trailing slash", []Image{{Name: "x/y:1", Files: []File{{Path: "/bin/", Mode: fs.ModeDir | 0o755}}}}, "clean"},
		{"root", []Image{{Name: "x/y:1", Files: []File{{Path: "/", Mode: fs.ModeDir | 0o755}}}}, "root directory"},
		{"duplicate path", []Image{{Name: "x/y:1", Files: []File{file("/a"), file("/a")}}}, `"/a" given twice`},
		{"parent is a file", []Image{{Name: "x/y:1", Files: []File{file("/a"), file("/a/b")}}}, "not a directory"},
		{"symlink without target", []Image{{Name: "x/y:1", Files: []File{{Path: "/l", Mode: fs.ModeSymlink}}}}, "no target"},
		{"dir with data", []Image{{Name: "x/y:1", Files: []File{{Path: "/d", Mode: fs.ModeDir, Data: []byte("x")}}}}, "directory has data"},
		{"named pipe", []Image{{Name: "x/y:1", Files: []File{{Path: "/p", Mode: fs.ModeNamedPipe}}}}, "unsupported file type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(io.Discard, tt.imgs...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Write error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
