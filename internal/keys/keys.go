// Package keys holds the Kubernetes annotation and label keys that podagent reads or writes on API
// objects, with the names the kubelet and kube-apiserver give them, so that every half of
// podagent spells them one way. (The labels podagent puts on containerd containers are the
// runtime's, in runtime/labels.go.)
package keys

const (
	// ConfigSourceAnnotation says where a static pod came from: "file" or "http".
	ConfigSourceAnnotation = "kubernetes.io/config.source"
	// ConfigHashAnnotation is the hex sha256 of a static pod as decoded from its manifest: it
	// changes when, and only when, the manifest's content for that pod changes.
	ConfigHashAnnotation = "kubernetes.io/config.hash"
	// MirrorAnnotation marks a pod in the API as the mirror of a static pod; its value is the
	// static pod's ConfigHashAnnotation.
	MirrorAnnotation = "kubernetes.io/config.mirror"
	// DefaultContainerAnnotation names the container that kubectl logs and exec pick.
	DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"
	// MetadataNameLabel is the label every namespace carries with its own name.
	MetadataNameLabel = "kubernetes.io/metadata.name"
)
