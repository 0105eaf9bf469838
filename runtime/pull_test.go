package runtime_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/internal/testenv"
	"github.com/podagent/podagent/internal/testimages"
	"github.com/podagent/podagent/runtime"
)

func TestDefaultPullPolicy(t *testing.T) {
	const dgst = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		image string
		want  corev1.PullPolicy
	}{
		{"busybox", corev1.PullAlways},
		{"busybox:latest", corev1.PullAlways},
		{"docker.io/library/busybox:latest", corev1.PullAlways},
		{"luksa/kubia", corev1.PullAlways},
		{"registry.example.com:5000/app", corev1.PullAlways},
		{"busybox:1.36", corev1.PullIfNotPresent},
		{"registry.example.com:5000/app:v1", corev1.PullIfNotPresent},
		{"busybox@" + dgst, corev1.PullIfNotPresent},
		{"busybox:1.36@" + dgst, corev1.PullIfNotPresent},
		// The API server judges by the tag when there is one, digest or not.
		{"busybox:latest@" + dgst, corev1.PullAlways},
		// Tags are case-sensitive: only "latest" means latest.
		{"busybox:Latest", corev1.PullIfNotPresent},
		// Invalid references are left to validation.
		{"Not A Reference", corev1.PullIfNotPresent},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			if got := runtime.DefaultPullPolicy(tt.image); got != tt.want {
				t.Errorf("DefaultPullPolicy(%q) = %s, want %s", tt.image, got, tt.want)
			}
		})
	}
}

// TestEnsureImagePull pulls from a registry served in this process on 127.0.0.1, configured as the
// mirror of docker.io. Nothing may leave 127.0.0.1: every docker.io image a case could pull exists in
// the mirror (so the resolver never falls through to registry-1.docker.io), and the error cases use
// registries named by closed ports on 127.0.0.1.
func TestEnsureImagePull(t *testing.T) {
	testenv.RequireContainerd(t)
	src := testenv.ArchiveImages(t)
	busybox, kubia := src[testimages.BusyboxImage], src[testimages.KubiaImage]
	busyboxV2 := revised(t, busybox, "2")

	reg := testenv.StartRegistry(t)
	reg.Push(t, "podagenttest/busybox:1.0", busybox)
	reg.Push(t, "podagenttest/kubia:1.0", kubia)
	reg.Push(t, "podagenttest/never:1.0", busybox)
	// A different image under the name the local busybox has, so that a pull that should not have
	// happened shows as a changed digest (and does not leave 127.0.0.1).
	reg.Push(t, "library/busybox:latest", busyboxV2)

	// notFoundRegistry's mirror answers 404, then the registry itself refuses the connection.
	notFoundRegistry := closedAddr(t)
	// downRegistry and its mirror both refuse connections.
	downRegistry, downMirror := closedAddr(t), closedAddr(t)

	dir := t.TempDir()
	cfg := testenv.RuntimeConfig(dir)
	cfg.Mirrors = map[string][]string{
		"docker.io":      {"http://" + reg.Addr},
		notFoundRegistry: {"http://" + reg.Addr},
		downRegistry:     {"http://" + downMirror},
	}
	rt := testenv.NewRuntimeWith(t, cfg, testenv.NetworkOptions(dir))

	tests := []struct {
		name   string
		image  string
		policy corev1.PullPolicy
		// wantID is the repo digest EnsureImage returns; "" when an error is expected.
		wantID string
		// wantErrs must all match the error with errors.Is; wantMsg must be in its text.
		wantErrs []error
		wantMsg  string
	}{
		{
			name:   "IfNotPresent pulls a missing image through the mirror",
			image:  "podagenttest/busybox:1.0",
			policy: corev1.PullIfNotPresent,
			wantID: "docker.io/podagenttest/busybox@" + digestOf(t, busybox),
		},
		{
			name:   "IfNotPresent uses a present image without pulling",
			image:  "busybox",
			policy: corev1.PullIfNotPresent,
			wantID: "docker.io/library/busybox@" + digestOf(t, busybox),
		},
		{
			name:   "Never uses a present image",
			image:  "docker.io/library/busybox:latest",
			policy: corev1.PullNever,
			wantID: "docker.io/library/busybox@" + digestOf(t, busybox),
		},
		{
			name:     "Never fails for a missing image even if the registry has it",
			image:    "podagenttest/never:1.0",
			policy:   corev1.PullNever,
			wantErrs: []error{runtime.ErrImageNeverPull, runtime.ErrImageNotPresent},
			wantMsg:  `Container image "podagenttest/never:1.0" is not present with pull policy of Never`,
		},
		{
			name:     "a nonexistent image is ErrImagePull",
			image:    notFoundRegistry + "/podagenttest/nope:1.0",
			policy:   corev1.PullIfNotPresent,
			wantErrs: []error{runtime.ErrImagePull, errdefs.ErrNotFound},
			wantMsg:  `pull image "` + notFoundRegistry + `/podagenttest/nope:1.0": `,
		},
		{
			name:     "a down mirror and an unreachable registry are ErrImagePull",
			image:    downRegistry + "/podagenttest/busybox:1.0",
			policy:   corev1.PullAlways,
			wantErrs: []error{runtime.ErrImagePull},
			wantMsg:  `pull image "` + downRegistry + `/podagenttest/busybox:1.0": `,
		},
		{
			name:    "an unknown policy is refused",
			image:   "podagenttest/busybox:2.0",
			policy:  "Sometimes",
			wantMsg: `unsupported pull policy "Sometimes"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A short deadline turns a hang into a failure; every case here answers at once.
			ctx, cancel := context.WithTimeout(rt.Ctx, 20*time.Second)
			defer cancel()
			got, err := rt.EnsureImage(ctx, tt.image, tt.policy)
			if tt.wantID == "" {
				if err == nil {
					t.Fatalf("EnsureImage(%q, %s) = %+v, want an error", tt.image, tt.policy, got)
				}
				for _, want := range tt.wantErrs {
					if !errors.Is(err, want) {
						t.Errorf("EnsureImage(%q, %s) error %q does not match %v", tt.image, tt.policy, err, want)
					}
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("EnsureImage(%q, %s) hung until the deadline: %v", tt.image, tt.policy, err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("EnsureImage(%q, %s) error %q does not contain %q", tt.image, tt.policy, err, tt.wantMsg)
				}
				t.Logf("error: %v", err)
				assertAbsent(t, rt, tt.image)
				return
			}
			if err != nil {
				t.Fatalf("EnsureImage(%q, %s): %v", tt.image, tt.policy, err)
			}
			wantRef, _ := runtime.NormalizeImage(tt.image)
			if got.Ref != wantRef || got.ID != tt.wantID {
				t.Errorf("EnsureImage(%q, %s) = %+v, want {Ref:%s ID:%s}", tt.image, tt.policy, got, wantRef, tt.wantID)
			}
			assertUnpacked(t, rt, wantRef)
			if id, err := rt.ImageID(ctx, tt.image); err != nil || id != tt.wantID {
				t.Errorf("ImageID(%q) = %q, %v; want %q", tt.image, id, err, tt.wantID)
			}
		})
	}

	t.Run("Always resolves the tag again, IfNotPresent does not", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(rt.Ctx, 30*time.Second)
		defer cancel()
		const image = "podagenttest/moving:latest"
		v1ID := "docker.io/podagenttest/moving@" + digestOf(t, busybox)
		v2ID := "docker.io/podagenttest/moving@" + digestOf(t, busyboxV2)
		reg.Push(t, image, busybox)
		ensure := func(policy corev1.PullPolicy, wantID string) {
			t.Helper()
			got, err := rt.EnsureImage(ctx, image, policy)
			if err != nil {
				t.Fatalf("EnsureImage(%q, %s): %v", image, policy, err)
			}
			if got.ID != wantID {
				t.Fatalf("EnsureImage(%q, %s) ID = %s, want %s", image, policy, got.ID, wantID)
			}
		}
		ensure(corev1.PullAlways, v1ID)
		reg.Push(t, image, busyboxV2) // the tag moves
		ensure(corev1.PullIfNotPresent, v1ID)
		ensure(corev1.PullNever, v1ID)
		ensure(corev1.PullAlways, v2ID)
		ensure(corev1.PullIfNotPresent, v2ID)
		assertUnpacked(t, rt, "docker.io/"+image)
	})

	t.Run("concurrent pulls of one image agree", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(rt.Ctx, 30*time.Second)
		defer cancel()
		const image = "podagenttest/kubia:1.0"
		want := "docker.io/podagenttest/kubia@" + digestOf(t, kubia)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		ids := make([]string, len(errs))
		for i := range errs {
			wg.Go(func() {
				img, err := rt.EnsureImage(ctx, image, corev1.PullAlways)
				ids[i], errs[i] = img.ID, err
			})
		}
		wg.Wait()
		for i := range errs {
			if errs[i] != nil || ids[i] != want {
				t.Errorf("pull %d: ID %q, error %v; want %s", i, ids[i], errs[i], want)
			}
		}
		assertUnpacked(t, rt, "docker.io/"+image)
	})

	t.Run("ImageID of a missing image", func(t *testing.T) {
		if id, err := rt.ImageID(rt.Ctx, "podagenttest/absent:1.0"); !errors.Is(err, runtime.ErrImageNotPresent) {
			t.Errorf("ImageID of a missing image = %q, %v; want ErrImageNotPresent", id, err)
		}
	})
}

// revised is img with an annotation added: the same layers under a different manifest digest, as
// when a tag is pushed again.
func revised(t *testing.T, img v1.Image, rev string) v1.Image {
	t.Helper()
	out, ok := mutate.Annotations(img, map[string]string{"io.podagent.test.revision": rev}).(v1.Image)
	if !ok {
		t.Fatal("annotating an image did not give an image")
	}
	return out
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// closedAddr returns a 127.0.0.1 address nothing listens on, so connecting to it is refused at
// once.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func assertUnpacked(t *testing.T, rt *testenv.Runtime, ref string) {
	t.Helper()
	img, err := rt.Client().GetImage(rt.Ctx, ref)
	if err != nil {
		t.Fatalf("image %s is not local: %v", ref, err)
	}
	ok, err := img.IsUnpacked(rt.Ctx, rt.Config.Snapshotter)
	if err != nil || !ok {
		t.Errorf("image %s unpacked in %s = %v, %v; want true", ref, rt.Config.Snapshotter, ok, err)
	}
}

func assertAbsent(t *testing.T, rt *testenv.Runtime, image string) {
	t.Helper()
	ref, err := runtime.NormalizeImage(image)
	if err != nil {
		return
	}
	if _, err := rt.Client().ImageService().Get(rt.Ctx, ref); !errdefs.IsNotFound(err) {
		t.Errorf("image %s is in the store after a failed EnsureImage (err %v)", ref, err)
	}
}
