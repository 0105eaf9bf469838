package mirror_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/mirror"
)

func TestMirrorServesArchiveReadOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mirror.StartFromArchives(ln, testenv.ImageArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := testenv.ArchiveImages(t)
	for path, ref := range map[string]string{"luksa/kubia:latest": "docker.io/luksa/kubia:latest", "library/busybox:latest": "docker.io/library/busybox:latest"} {
		r, err := name.ParseReference(m.Addr+"/"+path, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(r)
		if err != nil {
			t.Fatalf("get %s from the mirror: %v", path, err)
		}
		wd, _ := want[ref].Digest()
		if desc.Digest != wd {
			t.Errorf("%s: digest %s, want the archive's %s", path, desc.Digest, wd)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+m.Addr+"/v2/evil/blobs/uploads/", strings.NewReader(""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("an upload got %s, want 405: the mirror is read-only", resp.Status)
	}
}
