package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// NormalizeImage turns a pod's image into a full reference the way Kubernetes and containerd do:
// luksa/kubia becomes docker.io/luksa/kubia:latest.
func NormalizeImage(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("parse image reference %q: %w", image, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// ImportArchive imports the images in an OCI or Docker archive and unpacks them.
func (r *Runtime) ImportArchive(ctx context.Context, archive io.Reader) ([]string, error) {
	imgs, err := r.client.Import(ctx, archive)
	if err != nil {
		return nil, fmt.Errorf("import image archive: %w", err)
	}
	names := make([]string, 0, len(imgs))
	for _, i := range imgs {
		img := containerd.NewImage(r.client, i)
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", i.Name, err)
		}
		names = append(names, i.Name)
	}
	return names, nil
}

// ErrImageNotPresent is returned for an image that is not in the runtime's image store.
var ErrImageNotPresent = errdefs.ErrNotFound

// localImage returns the unpacked image ref, or an error wrapping ErrImageNotPresent.
func (r *Runtime) localImage(ctx context.Context, ref string) (containerd.Image, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return nil, err
	}
	img, err := r.client.GetImage(ctx, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %q is not present: %w", name, ErrImageNotPresent)
		}
		return nil, fmt.Errorf("look up image %q: %w", name, err)
	}
	unpacked, err := img.IsUnpacked(ctx, r.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("check whether image %q is unpacked: %w", name, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %q: %w", name, err)
		}
	}
	return img, nil
}

// imageConfig reads the OCI image config (entrypoint, cmd, env, user, working directory).
func imageConfig(ctx context.Context, img containerd.Image) (ocispec.ImageConfig, error) {
	desc, err := img.Config(ctx)
	if err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("image %s config descriptor: %w", img.Name(), err)
	}
	raw, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("read config of image %s: %w", img.Name(), err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("parse config of image %s: %w", img.Name(), err)
	}
	return cfg.Config, nil
}
