package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// podDir is where a pod's files live: /etc/hosts, /etc/hostname, resolv.conf and its volumes, as
// the kubelet keeps them under /var/lib/kubelet/pods/<uid>.
func (r *Runtime) podDir(uid string) string { return filepath.Join(r.cfg.RootDir, "pods", uid) }

// ProjectedVolumeDir is where the files of a pod's projected, configMap, secret or downwardAPI
// volume are written, for the pod's containers to mount.
func (r *Runtime) ProjectedVolumeDir(uid, volume string) string {
	return filepath.Join(r.podDir(uid), "volumes", "kubernetes.io~projected", volume)
}

func (r *Runtime) emptyDirPath(uid, volume string) string {
	return filepath.Join(r.podDir(uid), "volumes", "kubernetes.io~empty-dir", volume)
}

// podHostname is the hostname the pod's containers see: spec.hostname, else the pod name.
func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	// A pod name is a DNS subdomain and may be longer than a hostname can be; the kubelet truncates
	// it to 63 characters the same way.
	h := pod.Name
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// hostsFile renders the pod's /etc/hosts exactly as the kubelet's managed hosts file.
func hostsFile(pod *corev1.Pod, podIPs []string) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		fmt.Fprintf(&b, "%s\t%s\n", ip, podHostname(pod))
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}

// writePodFiles writes the files every container of the pod bind-mounts, and creates its emptyDir
// volumes. It runs once per sandbox; files are rewritten in place, because a container's bind mount
// holds the inode and would not see a replaced file.
func (r *Runtime) writePodFiles(pod *corev1.Pod, podIPs []string) error {
	dir := r.podDir(string(pod.UID))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create directory of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	resolv, err := os.ReadFile(r.cfg.ResolvConf)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s for pod %s/%s: %w", r.cfg.ResolvConf, pod.Namespace, pod.Name, err)
	}
	files := map[string][]byte{
		"etc-hosts":   hostsFile(pod, podIPs),
		"hostname":    []byte(podHostname(pod) + "\n"),
		"resolv.conf": resolv,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write %s of pod %s/%s: %w", name, pod.Namespace, pod.Name, err)
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir == nil {
			continue
		}
		p := r.emptyDirPath(string(pod.UID), v.Name)
		if err := os.MkdirAll(p, 0o777); err != nil {
			return fmt.Errorf("create emptyDir %s of pod %s/%s: %w", v.Name, pod.Namespace, pod.Name, err)
		}
		if v.EmptyDir.Medium == corev1.StorageMediumMemory && !isMountPoint(p) {
			opts := "mode=0777"
			if l := v.EmptyDir.SizeLimit; l != nil && !l.IsZero() {
				opts += fmt.Sprintf(",size=%d", l.Value())
			}
			if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
				return fmt.Errorf("mount tmpfs for emptyDir %s of pod %s/%s: %w", v.Name, pod.Namespace, pod.Name, err)
			}
		}
	}
	return nil
}

// removePodFiles removes the pod's directory, unmounting memory-backed emptyDirs first.
func (r *Runtime) removePodFiles(uid string) error {
	dir := r.podDir(uid)
	vols, _ := filepath.Glob(filepath.Join(dir, "volumes", "*", "*"))
	for _, v := range vols {
		if isMountPoint(v) {
			if err := unix.Unmount(v, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount volume %s of pod %s: %w", v, uid, err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove directory of pod %s: %w", uid, err)
	}
	return nil
}

func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// PodDirUIDs lists the UIDs of the pods that have a directory (volumes, hosts files), so that
// a restarted agent finds what a pod removed halfway left behind.
func (r *Runtime) PodDirUIDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(r.cfg.RootDir, "pods"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pod directories: %w", err)
	}
	uids := make([]string, 0, len(ents))
	for _, e := range ents {
		uids = append(uids, e.Name())
	}
	return uids, nil
}

// PodLogRefs lists the pods that have a log directory (<namespace>_<name>_<uid>).
func (r *Runtime) PodLogRefs() ([]PodRef, error) {
	ents, err := os.ReadDir(r.cfg.LogDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pod log directories: %w", err)
	}
	var refs []PodRef
	for _, e := range ents {
		// Namespaces and pod names cannot hold "_"; a UID could, so split from the left.
		parts := strings.SplitN(e.Name(), "_", 3)
		if len(parts) == 3 && e.IsDir() {
			refs = append(refs, PodRef{Namespace: parts[0], Name: parts[1], UID: parts[2]})
		}
	}
	return refs, nil
}
