package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// writeVolumes writes the files of the pod's projected, configMap, secret and downwardAPI volumes
// that are not there yet, as the kubelet's AtomicWriter lays them out: the files in a directory
// of their own, a "..data" symlink to it, and each file a symlink through "..data", so that a
// container never sees half of them. The API objects are read through the node's client (the
// cluster's Node authorizer lets a node read what its pods reference); a service account token is
// requested for the pod (TokenRequest), bound to it.
func (a *Agent) writeVolumes(ctx context.Context, pod *corev1.Pod) error {
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil && v.ConfigMap == nil && v.Secret == nil && v.DownwardAPI == nil {
			continue
		}
		dir := a.rt.ProjectedVolumeDir(string(pod.UID), v.Name)
		if _, err := os.Lstat(filepath.Join(dir, "..data")); err == nil {
			continue
		}
		files, err := a.volumeFiles(ctx, pod, v)
		if err != nil {
			return fmt.Errorf("volume %q of pod %s/%s: %w", v.Name, pod.Namespace, pod.Name, err)
		}
		if err := writeAtomic(dir, files); err != nil {
			return fmt.Errorf("write volume %q of pod %s/%s: %w", v.Name, pod.Namespace, pod.Name, err)
		}
	}
	return nil
}

// volumeFile is one file of a volume: its content and mode.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

func (a *Agent) volumeFiles(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	switch {
	case v.Projected != nil:
		mode := modeOr(v.Projected.DefaultMode, 0o644)
		for _, src := range v.Projected.Sources {
			var err error
			switch {
			case src.ServiceAccountToken != nil:
				err = a.tokenFile(ctx, pod, src.ServiceAccountToken, mode, files)
			case src.ConfigMap != nil:
				err = a.configMapFiles(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, mode, files)
			case src.Secret != nil:
				err = a.secretFiles(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, src.Secret.Optional, mode, files)
			case src.DownwardAPI != nil:
				err = downwardFiles(pod, src.DownwardAPI.Items, mode, files)
			default:
				err = errors.New("a projected source podagent does not support")
			}
			if err != nil {
				return nil, err
			}
		}
	case v.ConfigMap != nil:
		return files, a.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, modeOr(v.ConfigMap.DefaultMode, 0o644), files)
	case v.Secret != nil:
		return files, a.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, modeOr(v.Secret.DefaultMode, 0o644), files)
	case v.DownwardAPI != nil:
		return files, downwardFiles(pod, v.DownwardAPI.Items, modeOr(v.DownwardAPI.DefaultMode, 0o644), files)
	}
	return files, nil
}

func (a *Agent) tokenFile(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, mode os.FileMode, files map[string]volumeFile) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := a.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token of service account %s/%s: %w", pod.Namespace, sa, err)
	}
	files[src.Path] = volumeFile{[]byte(tr.Status.Token), mode}
	return nil
}

func (a *Agent) configMapFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode, files map[string]volumeFile) error {
	cm, err := a.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if ptr.Deref(optional, false) {
			return nil
		}
		return fmt.Errorf("configmap %s/%s: %w", ns, name, err)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, mode, files)
}

func (a *Agent) secretFiles(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode, files map[string]volumeFile) error {
	s, err := a.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if ptr.Deref(optional, false) {
			return nil
		}
		return fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	return keyFiles(s.Data, items, mode, files)
}

// keyFiles adds data's keys as files: every key under its own name, or only the items' keys at
// their paths.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, mode os.FileMode, files map[string]volumeFile) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{v, mode}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q not found", it.Key)
		}
		files[it.Path] = volumeFile{v, modeOr(it.Mode, mode)}
	}
	return nil
}

// downwardFiles adds the pod's fields the items name.
func downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode os.FileMode, files map[string]volumeFile) error {
	for _, it := range items {
		if it.FieldRef == nil {
			return fmt.Errorf("downwardAPI item %q: only fieldRef is supported", it.Path)
		}
		var val string
		switch it.FieldRef.FieldPath {
		case "metadata.name":
			val = pod.Name
		case "metadata.namespace":
			val = pod.Namespace
		case "metadata.uid":
			val = string(pod.UID)
		case "metadata.labels":
			val = formatMap(pod.Labels)
		case "metadata.annotations":
			val = formatMap(pod.Annotations)
		default:
			return fmt.Errorf("downwardAPI item %q: field %s is not supported", it.Path, it.FieldRef.FieldPath)
		}
		files[it.Path] = volumeFile{[]byte(val), modeOr(it.Mode, mode)}
	}
	return nil
}

// formatMap is labels or annotations as the kubelet writes them: key="value" lines, sorted.
func formatMap(m map[string]string) string {
	var lines []string
	for k, v := range m {
		lines = append(lines, k+"="+strconv.Quote(v))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func modeOr(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & os.ModePerm
}

// writeAtomic writes files into dir as the kubelet's AtomicWriter does (see writeVolumes).
func writeAtomic(dir string, files map[string]volumeFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := fmt.Sprintf("..%s", time.Now().UTC().Format("2006_01_02_15_04_05.000000000"))
	data := filepath.Join(dir, ts)
	for name, f := range files {
		p := filepath.Join(data, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		top := strings.SplitN(name, "/", 2)[0]
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
				return err
			}
		}
	}
	return nil
}
