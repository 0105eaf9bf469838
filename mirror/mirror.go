// Package mirror serves the images of OCI archives as a read-only registry, so that a host with no
// registry (offline, or a test) runs pods that name `luksa/kubia` verbatim: the agent is told to
// use it as the mirror of docker.io, and pulls from it as from any registry.
package mirror

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Mirror is a registry on a local listener holding the images it was given.
type Mirror struct {
	// Addr is where it listens, host:port.
	Addr string
	srv  *http.Server
	// loaded turns the registry read-only once the images are in.
	loaded chan struct{}
}

// Start serves a registry on ln and loads imgs into it, each under its reference's path (so
// docker.io/luksa/kubia:latest is luksa/kubia:latest, as a docker.io mirror is asked for it).
// After loading, the registry refuses every write.
func Start(ln net.Listener, imgs map[string]v1.Image) (*Mirror, error) {
	m := &Mirror{Addr: ln.Addr().String(), loaded: make(chan struct{})}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	m.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-m.loaded:
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "this mirror is read-only", http.StatusMethodNotAllowed)
				return
			}
		default:
		}
		reg.ServeHTTP(w, r)
	})}
	go m.srv.Serve(ln)
	for ref, img := range imgs {
		if err := m.push(ref, img); err != nil {
			m.Close()
			return nil, err
		}
	}
	close(m.loaded)
	return m, nil
}

func (m *Mirror) push(ref string, img v1.Image) error {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("image %q: %w", ref, err)
	}
	target := m.Addr + "/" + reference.Path(named)
	if tagged, ok := reference.TagNameOnly(named).(reference.Tagged); ok {
		target += ":" + tagged.Tag()
	}
	dst, err := name.ParseReference(target, name.Insecure)
	if err != nil {
		return fmt.Errorf("image %q: %w", ref, err)
	}
	if err := remote.Write(dst, img); err != nil {
		return fmt.Errorf("load image %q into the mirror: %w", ref, err)
	}
	return nil
}

// Close stops serving.
func (m *Mirror) Close() error { return m.srv.Shutdown(context.Background()) }

// ArchiveImages reads the images of an OCI archive (a tar of an OCI image layout, as `make images`
// writes), keyed by their org.opencontainers.image.ref.name annotation. It extracts the archive
// into dir, which must outlive the images.
func ArchiveImages(archive, dir string) (map[string]v1.Image, error) {
	if err := untar(archive, dir); err != nil {
		return nil, err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("image archive %s: %w", archive, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image archive %s: %w", archive, err)
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image archive %s: %w", archive, err)
	}
	imgs := map[string]v1.Image{}
	for _, desc := range manifest.Manifests {
		ref := desc.Annotations[ocispec.AnnotationRefName]
		if ref == "" {
			continue
		}
		img, err := p.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s in %s: %w", ref, archive, err)
		}
		imgs[ref] = img
	}
	return imgs, nil
}

// StartFromArchives serves the images of the given OCI archives on ln (see Start).
func StartFromArchives(ln net.Listener, archives ...string) (*Mirror, error) {
	imgs := map[string]v1.Image{}
	for _, a := range archives {
		dir, err := os.MkdirTemp("", "podagent-mirror-")
		if err != nil {
			return nil, err
		}
		// Start copies the images into the registry; the extracted files are not needed after.
		defer os.RemoveAll(dir)
		got, err := ArchiveImages(a, dir)
		if err != nil {
			return nil, err
		}
		for ref, img := range got {
			imgs[ref] = img
		}
	}
	return Start(ln, imgs)
}

// untar extracts the regular files of an archive into dir.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("open image archive: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read image archive %s: %w", archive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if !filepath.IsLocal(hdr.Name) || strings.Contains(hdr.Name, "\\") {
			return fmt.Errorf("image archive %s: entry %q escapes the directory", archive, hdr.Name)
		}
		dst := filepath.Join(dir, hdr.Name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extract %s from %s: %w", hdr.Name, archive, err)
		}
	}
}
