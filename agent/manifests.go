package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// readManifestDir reads every pod in dir (YAML or JSON, several documents per file; dotfiles are
// ignored, as the kubelet does). A file that cannot be read is reported and skipped, so that one
// bad manifest never stops the others.
func readManifestDir(dir, nodeName string) ([]*corev1.Pod, map[string]error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, map[string]error{dir: err}
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var pods []*corev1.Pod
	errs := map[string]error{}
	for _, name := range names {
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			errs[path] = err
			continue
		}
		filePods, err := decodePods(raw, path, nodeName)
		if err != nil {
			errs[path] = err
			continue
		}
		pods = append(pods, filePods...)
	}
	return pods, errs
}

// decodePods decodes the pods in one manifest file, strictly: an unknown field is an error, never
// silently dropped. Each becomes a static pod as the kubelet makes them: named NAME-NODENAME,
// bound to this node, with a UID derived from its content, node and source.
func decodePods(raw []byte, source, nodeName string) ([]*corev1.Pod, error) {
	var pods []*corev1.Pod
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read document %d of %s: %w", i, source, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d of %s: %w", i, source, err)
		}
		if tm.APIVersion != "v1" || tm.Kind != "Pod" {
			return nil, fmt.Errorf("document %d of %s: apiVersion %q kind %q: only v1 Pod is supported in a manifest", i, source, tm.APIVersion, tm.Kind)
		}
		pod := &corev1.Pod{}
		if err := yaml.UnmarshalStrict(doc, pod); err != nil {
			return nil, fmt.Errorf("document %d of %s: %w", i, source, err)
		}
		staticPod(pod, doc, source, nodeName)
		pods = append(pods, pod)
	}
	return pods, nil
}

// staticPod makes pod a static pod of this node, as the kubelet's file source does.
func staticPod(pod *corev1.Pod, doc []byte, source, nodeName string) {
	h := sha256.New()
	h.Write(doc)
	h.Write([]byte(nodeName))
	h.Write([]byte(source))
	pod.UID = types.UID(hex.EncodeToString(h.Sum(nil))[:32])
	pod.Name = pod.Name + "-" + nodeName
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations["kubernetes.io/config.source"] = "file"
	pod.Annotations["kubernetes.io/config.hash"] = string(pod.UID)
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
}

func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}
