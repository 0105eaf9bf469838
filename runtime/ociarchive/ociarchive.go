// Package ociarchive builds single-layer OCI images from in-memory files and
// writes them as an OCI image-layout tar archive, the format containerd's
// client Import accepts. podagent has no registry to pull from, so every
// image it runs is built this way from binaries compiled in the repo.
//
// The output is deterministic: the same inputs always give the same bytes,
// and therefore the same digests, so re-importing an unchanged image is a
// no-op for containerd.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	// go-digest only computes hashes whose package is linked in; without
	// this import digest.FromBytes panics in binaries that do not happen
	// to import crypto/sha256 elsewhere.
	_ "crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"
	"unicode"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// File is one entry of an image's single layer.
type File struct {
	// Path is the absolute, clean path inside the image, e.g. "/bin/busybox".
	Path string
	// Mode holds the permission bits, fs.ModeSetuid/ModeSetgid/ModeSticky,
	// and fs.ModeDir or fs.ModeSymlink for directories and symlinks; no
	// type bit means a regular file.
	Mode fs.FileMode
	// Data is the content of a regular file.
	Data []byte
	// Link is the target of a symlink.
	Link string
}

// Config is the part of the OCI image config a pod cares about.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string // "KEY=value"
	WorkingDir string
	// ExposedPorts lists ports as "port/proto", e.g. "8080/tcp".
	ExposedPorts []string
	User         string
}

// Image is one named image.
type Image struct {
	// Name is the fully qualified reference containerd stores the image
	// under, e.g. "docker.io/luksa/kubia:latest".
	Name   string
	Files  []File
	Config Config
}

// epoch is the modification time of every tar entry; a fixed time keeps
// the layer digests independent of when the archive was built.
var epoch = time.Unix(0, 0)

// Annotation keys naming an image in index.json. containerd's Import
// prefers the first; other OCI tools only know the second. Both hold the
// full name so every consumer agrees on it.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = ocispec.AnnotationRefName
)

// Write writes an OCI image layout tar holding imgs to w.
func Write(w io.Writer, imgs ...Image) error {
	if len(imgs) == 0 {
		return errors.New("ociarchive: no images to write")
	}
	blobs := blobStore{}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
	}
	names := make(map[string]bool, len(imgs))
	for _, img := range imgs {
		// Names are references; whitespace would never resolve.
		if img.Name == "" || strings.ContainsFunc(img.Name, unicode.IsSpace) {
			return fmt.Errorf("ociarchive: invalid image name %q", img.Name)
		}
		if names[img.Name] {
			return fmt.Errorf("ociarchive: image %q given twice", img.Name)
		}
		names[img.Name] = true

		desc, err := addImage(blobs, img)
		if err != nil {
			return fmt.Errorf("ociarchive: build image %q: %w", img.Name, err)
		}
		desc.Annotations = map[string]string{
			annotationContainerdName: img.Name,
			annotationRefName:        img.Name,
		}
		index.Manifests = append(index.Manifests, desc)
	}

	indexJSON, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("ociarchive: encode index.json: %w", err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("ociarchive: encode %s: %w", ocispec.ImageLayoutFile, err)
	}
	if err := writeLayout(w, layoutJSON, indexJSON, blobs); err != nil {
		return fmt.Errorf("ociarchive: write archive: %w", err)
	}
	return nil
}

// blobStore holds the content-addressed blobs of the layout. Keying by
// digest deduplicates blobs shared between images.
type blobStore map[digest.Digest][]byte

// add stores data and returns its descriptor.
func (b blobStore) add(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	b[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// addJSON stores v encoded as JSON. encoding/json sorts map keys, so the
// encoding, and hence the digest, is stable.
func (b blobStore) addJSON(mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("encode %s: %w", mediaType, err)
	}
	return b.add(mediaType, data), nil
}

// addImage stores the layer, config and manifest of img and returns the
// manifest's descriptor for index.json.
func addImage(blobs blobStore, img Image) (ocispec.Descriptor, error) {
	layer, err := layerTar(img.Files)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	gz, err := gzipBytes(layer)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("compress layer: %w", err)
	}
	layerDesc := blobs.add(ocispec.MediaTypeImageLayerGzip, gz)

	platform := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	config := ocispec.Image{
		Platform: platform,
		Config: ocispec.ImageConfig{
			User:         img.Config.User,
			ExposedPorts: portSet(img.Config.ExposedPorts),
			Env:          img.Config.Env,
			Entrypoint:   img.Config.Entrypoint,
			Cmd:          img.Config.Cmd,
			WorkingDir:   img.Config.WorkingDir,
		},
		// The diffID names the uncompressed layer; containerd checks it
		// against the unpacked snapshot, so it must hash the raw tar.
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer)}},
	}
	configDesc, err := blobs.addJSON(ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return ocispec.Descriptor{}, err
	}

	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	}
	desc, err := blobs.addJSON(ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	// The platform on the index entry lets containerd's platform filter
	// select the manifest without reading the config first.
	desc.Platform = &platform
	return desc, nil
}

// portSet converts "8080/tcp" strings to the set the OCI config uses.
func portSet(ports []string) map[string]struct{} {
	if len(ports) == 0 {
		return nil
	}
	set := make(map[string]struct{}, len(ports))
	for _, p := range ports {
		set[p] = struct{}{}
	}
	return set
}

// layerTar returns the uncompressed layer tar holding files, with every
// missing parent directory added as 0755 and entries sorted by path.
func layerTar(files []File) ([]byte, error) {
	entries := make(map[string]File, len(files))
	for _, f := range files {
		if err := checkFile(f); err != nil {
			return nil, err
		}
		if _, dup := entries[f.Path]; dup {
			return nil, fmt.Errorf("file %q given twice", f.Path)
		}
		entries[f.Path] = f
	}
	// Add implicit parents only after all explicit entries are known so an
	// explicit directory always wins over the default mode.
	for _, f := range files {
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			parent, ok := entries[dir]
			if !ok {
				entries[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
				continue
			}
			if !parent.Mode.IsDir() {
				return nil, fmt.Errorf("file %q: parent %q is not a directory", f.Path, dir)
			}
		}
	}

	// A parent is a prefix of its children, so sorting by path also puts
	// every directory before its contents, as extractors expect.
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	slices.Sort(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := entries[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    tarMode(f.Mode),
			ModTime: epoch,
		}
		switch f.Mode.Type() {
		case fs.ModeDir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case fs.ModeSymlink:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = f.Link
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write tar header for %q: %w", p, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("write tar data for %q: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finish layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// checkFile rejects entries that cannot be represented unambiguously.
func checkFile(f File) error {
	if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
		return fmt.Errorf("file %q: path must be absolute and clean", f.Path)
	}
	if f.Path == "/" {
		return errors.New(`file "/": the root directory cannot be a layer entry`)
	}
	switch f.Mode.Type() {
	case 0:
		if f.Link != "" {
			return fmt.Errorf("file %q: regular file has a link target", f.Path)
		}
	case fs.ModeDir:
		if len(f.Data) != 0 || f.Link != "" {
			return fmt.Errorf("file %q: directory has data or a link target", f.Path)
		}
	case fs.ModeSymlink:
		if f.Link == "" {
			return fmt.Errorf("file %q: symlink has no target", f.Path)
		}
		if len(f.Data) != 0 {
			return fmt.Errorf("file %q: symlink has data", f.Path)
		}
	default:
		return fmt.Errorf("file %q: unsupported file type %v", f.Path, f.Mode.Type())
	}
	return nil
}

// tarMode converts Go's mode bits to the Unix bits a tar header holds; Go
// keeps setuid, setgid and sticky apart from the permission bits.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// gzipBytes compresses data. The gzip header carries no name or mtime, so
// the output depends only on data.
func gzipBytes(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeLayout writes the layout tar: oci-layout and index.json first so a
// streaming reader sees them early, then the blobs sorted by digest.
func writeLayout(w io.Writer, layoutJSON, indexJSON []byte, blobs blobStore) error {
	tw := tar.NewWriter(w)
	writeFile := func(name string, data []byte) error {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Mode:     0o644,
			Size:     int64(len(data)),
			ModTime:  epoch,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write header for %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	writeDir := func(name string) error {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write header for %s: %w", name, err)
		}
		return nil
	}

	if err := writeFile(ocispec.ImageLayoutFile, layoutJSON); err != nil {
		return err
	}
	if err := writeFile(ocispec.ImageIndexFile, indexJSON); err != nil {
		return err
	}
	blobDir := path.Join(ocispec.ImageBlobsDir, digest.SHA256.String())
	if err := writeDir(ocispec.ImageBlobsDir); err != nil {
		return err
	}
	if err := writeDir(blobDir); err != nil {
		return err
	}
	digests := make([]digest.Digest, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	slices.Sort(digests)
	for _, d := range digests {
		if err := writeFile(path.Join(blobDir, d.Encoded()), blobs[d]); err != nil {
			return err
		}
	}
	return tw.Close()
}
