package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	corev1 "k8s.io/api/core/v1"
)

// Sentinel errors of EnsureImage. Their text is the kubelet's waiting reason for a container whose
// image cannot be had, so callers can use err.Error() of the sentinel they match as the reason.
var (
	// ErrImagePull is wrapped by a pull that failed: the registry said the image does not exist,
	// could not be reached, or the pulled image could not be unpacked.
	ErrImagePull = errors.New("ErrImagePull")
	// ErrImageNeverPull is wrapped when the pull policy is Never and the image is not present.
	ErrImageNeverPull = errors.New("ErrImageNeverPull")
)

// Image is an image present in the runtime's image store.
type Image struct {
	// Ref is the normalized reference, e.g. docker.io/luksa/kubia:latest.
	Ref string
	// ID is the repo digest the kubelet shows as a container's imageID, e.g.
	// docker.io/luksa/kubia@sha256:..., naming the digest of the image's manifest or index.
	ID string
}

// DefaultPullPolicy is the imagePullPolicy Kubernetes gives a container that sets none: Always for
// a :latest tag or for no tag and no digest (which means :latest), IfNotPresent otherwise. As in
// the API server, an image with both a tag and a digest is judged by its tag alone, and an image
// that does not parse gets IfNotPresent (validation rejects it elsewhere).
func DefaultPullPolicy(image string) corev1.PullPolicy {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return corev1.PullIfNotPresent
	}
	tagged, hasTag := named.(reference.Tagged)
	_, hasDigest := named.(reference.Digested)
	if (hasTag && tagged.Tag() == "latest") || (!hasTag && !hasDigest) {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// EnsureImage makes image present and unpacked according to policy, as the kubelet's image manager
// does: Never uses the local image or fails with ErrImageNeverPull; IfNotPresent pulls only when
// the image is missing; Always resolves the reference in the registry every time and pulls what
// changed. An empty policy means DefaultPullPolicy(image). Pull failures wrap ErrImagePull and the
// cause. Pulls go through r's configured mirrors.
//
// Concurrent calls for the same image are not serialized here: containerd's content store lets only
// one writer ingest a blob and makes the others wait for it and then find it present, and unpacking
// a layer that another unpack has committed finds the snapshot present, so two pulls of one image
// download each blob once and end with the same image.
func (r *Runtime) EnsureImage(ctx context.Context, image string, policy corev1.PullPolicy) (Image, error) {
	ref, err := NormalizeImage(image)
	if err != nil {
		return Image{}, err
	}
	if policy == "" {
		policy = DefaultPullPolicy(image)
	}
	switch policy {
	case corev1.PullNever, corev1.PullIfNotPresent:
		img, err := r.localImage(ctx, ref)
		if err == nil {
			return imageOf(img.Name(), img.Target().Digest)
		}
		if !errors.Is(err, ErrImageNotPresent) {
			return Image{}, err
		}
		if policy == corev1.PullNever {
			return Image{}, &reasonError{
				reason: ErrImageNeverPull,
				msg:    fmt.Sprintf("Container image %q is not present with pull policy of Never", image),
				cause:  err,
			}
		}
	case corev1.PullAlways:
	default:
		return Image{}, fmt.Errorf("image %q: unsupported pull policy %q", image, policy)
	}
	return r.pull(ctx, ref)
}

// pull resolves ref in its registry (through the mirrors), fetches what is missing locally and
// unpacks it into the runtime's snapshotter for the host platform.
func (r *Runtime) pull(ctx context.Context, ref string) (Image, error) {
	start := time.Now()
	img, err := r.client.Pull(ctx, ref,
		containerd.WithResolver(newResolver(ctx, r.cfg.Mirrors)),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(r.cfg.Snapshotter),
	)
	if err != nil {
		return Image{}, &reasonError{reason: ErrImagePull, msg: fmt.Sprintf("pull image %q", ref), cause: err, showCause: true}
	}
	slog.Info("pulled image", "image", ref, "digest", img.Target().Digest, "duration", time.Since(start))
	return imageOf(img.Name(), img.Target().Digest)
}

// ImageID returns the repo digest (as Image.ID) of an image already present, without pulling or
// unpacking, so that status can show the imageID of imported images too. The error wraps
// ErrImageNotPresent when the image is missing.
func (r *Runtime) ImageID(ctx context.Context, ref string) (string, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return "", err
	}
	img, err := r.client.ImageService().Get(ctx, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("image %q is not present: %w", name, ErrImageNotPresent)
		}
		return "", fmt.Errorf("look up image %q: %w", name, err)
	}
	return repoDigest(name, img.Target.Digest)
}

// imageOf describes the image stored under name whose target has digest dgst.
func imageOf(name string, dgst digest.Digest) (Image, error) {
	id, err := repoDigest(name, dgst)
	if err != nil {
		return Image{}, err
	}
	return Image{Ref: name, ID: id}, nil
}

// repoDigest turns docker.io/luksa/kubia:latest and a digest into docker.io/luksa/kubia@sha256:...,
// dropping the tag as the kubelet's imageID does.
func repoDigest(name string, dgst digest.Digest) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("parse image name %q: %w", name, err)
	}
	withDigest, err := reference.WithDigest(reference.TrimNamed(named), dgst)
	if err != nil {
		return "", fmt.Errorf("image %q digest %q: %w", name, dgst, err)
	}
	return withDigest.String(), nil
}

// reasonError is an error that matches both a reason sentinel (ErrImagePull, ErrImageNeverPull) and
// its cause with errors.Is, while reading as a plain message: the sentinel's text is a reason code,
// not something to show the user twice.
type reasonError struct {
	reason error
	msg    string
	cause  error
	// showCause appends the cause to msg; the kubelet's Never message stands alone.
	showCause bool
}

func (e *reasonError) Error() string {
	if e.showCause {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *reasonError) Unwrap() []error { return []error{e.reason, e.cause} }
