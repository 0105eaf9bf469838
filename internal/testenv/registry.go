package testenv

import (
	"io"
	"log"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/podagent/podagent/internal/testimages"
	"github.com/podagent/podagent/mirror"
)

// Registry is a writable registry served in this process on 127.0.0.1.
type Registry struct{ Addr string }

// StartRegistry starts an empty registry on 127.0.0.1 that lives until t ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return &Registry{Addr: strings.TrimPrefix(srv.URL, "http://")}
}

// Push stores img in the registry as repoTag, e.g. "podagenttest/busybox:1.0".
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) {
	t.Helper()
	// go-containerregistry talks plain HTTP to 127.0.0.1 by itself.
	ref, err := name.ParseReference(r.Addr + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s to the test registry: %v", ref, err)
	}
}

// ArchiveImages reads the test images from the OCI archive testenv imports, keyed by name.
func ArchiveImages(t testing.TB) map[string]v1.Image {
	t.Helper()
	imgs, err := mirror.ArchiveImages(ImageArchive(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{testimages.BusyboxImage, testimages.KubiaImage} {
		if imgs[n] == nil {
			t.Fatalf("image %s not in the test archive", n)
		}
	}
	return imgs
}

// DockerHubMirror serves the test images on 127.0.0.1 under their Docker Hub paths
// (library/busybox:latest, luksa/kubia:latest) and returns its URL, to configure as the mirror of
// docker.io: pods that name `busybox` or `luksa/kubia` (pull policy Always) then pull from
// 127.0.0.1 and nothing leaves the host.
func DockerHubMirror(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mirror.Start(ln, ArchiveImages(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return "http://" + m.Addr
}
