package source

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/podagent/podagent/internal/keys"
)

// maxManifestSize bounds what is read from one manifest file or URL, so that a stray huge file
// or a misbehaving server cannot exhaust the node's memory: 10 MiB, as the kubelet's
// maxConfigLength.
const maxManifestSize = 10 << 20

// decodePods decodes the pods in one manifest (a file's content or a URL's body), strictly: an
// unknown or duplicated field is an error, never silently dropped. The manifest is YAML or JSON,
// with any number of documents; documents that are empty or only comments are skipped. Each pod
// becomes a static pod of nodeName (see staticPod). origin (the path or URL) names the manifest
// in errors. Any error rejects the whole manifest, so that a half-written file never yields half
// of its pods.
func decodePods(raw []byte, kind, origin, nodeName string) ([]*corev1.Pod, error) {
	var pods []*corev1.Pod
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read document %d of %s: %w", i, origin, err)
		}
		if isOnlyComments(doc) {
			continue
		}
		pod, err := decodePod(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d of %s: %w", i, origin, err)
		}
		pods = append(pods, pod)
	}
	for _, pod := range pods {
		if err := staticPod(pod, kind, nodeName); err != nil {
			return nil, fmt.Errorf("pod %s/%s of %s: %w", pod.Namespace, pod.Name, origin, err)
		}
	}
	return pods, nil
}

// decodePod decodes one document, which must be a v1 Pod with a name.
func decodePod(doc []byte) (*corev1.Pod, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	if tm.APIVersion != "v1" || tm.Kind != "Pod" {
		return nil, fmt.Errorf("apiVersion %q kind %q: only v1 Pod is supported in a manifest", tm.APIVersion, tm.Kind)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(doc, pod); err != nil {
		return nil, err
	}
	// encoding/json, under sigs.k8s.io/yaml, matches keys regardless of case; the kube-apiserver
	// does not. A second, case-sensitive pass names a field spelled with the wrong case (its
	// type errors are the first pass's to report, which reads YAML scalars as the field's type).
	if js, err := yaml.YAMLToJSON(doc); err == nil {
		if strictErrs, _ := kjson.UnmarshalStrict(js, &corev1.Pod{}); len(strictErrs) > 0 {
			return nil, fmt.Errorf("strict decoding error: %w", errors.Join(strictErrs...))
		}
	}
	// The name keys the pod's UID and the duplicate check: without one, two unnamed pods would
	// silently collapse into one.
	if pod.Name == "" {
		return nil, errors.New("metadata.name is required")
	}
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	return pod, nil
}

// staticPod makes a decoded pod a static pod of nodeName, as the kubelet's file and http sources
// do: named NAME-NODENAME, bound to the node, tolerating NoExecute taints (the node's own taints
// must not evict its static pods), and annotated with its source and content hash.
//
// Unlike the kubelet, whose UID hashes the content, the UID depends only on the source kind, the
// node and the pod's namespace/name: editing a manifest then updates the pod in place (the
// config.hash annotation says its content changed) instead of removing it and creating another.
func staticPod(pod *corev1.Pod, kind, nodeName string) error {
	// The hash is taken over the decoded pod, before podagent's own changes, so that comments and
	// formatting do not count as a change (no restart for reindenting a file), while any change
	// of a field does.
	content, err := json.Marshal(pod)
	if err != nil {
		return fmt.Errorf("hash content: %w", err)
	}
	sum := sha256.Sum256(content)

	pod.UID = StaticPodUID(kind, nodeName, pod.Namespace, pod.Name)
	pod.Name = pod.Name + "-" + nodeName
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[keys.ConfigSourceAnnotation] = kind
	pod.Annotations[keys.ConfigHashAnnotation] = hex.EncodeToString(sum[:])
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	return nil
}

// StaticPodUID is the stable UID of a static pod: 32 hex digits of a hash of where it comes from
// and its name (as written in the manifest, before the node suffix). The NUL separators keep
// ("a-b", "c") and ("a", "b-c") apart.
func StaticPodUID(kind, nodeName, namespace, name string) types.UID {
	sum := sha256.Sum256([]byte(kind + "\x00" + nodeName + "\x00" + namespace + "\x00" + name))
	return types.UID(hex.EncodeToString(sum[:])[:32])
}

// isOnlyComments tells whether a YAML document holds no content, only blank lines and comments,
// as between a leading comment and the first "---".
func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}
