package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/agent/source"
	"github.com/podagent/podagent/apiserver/registry"
	"github.com/podagent/podagent/internal/keys"
)

var podsResource = schema.GroupResource{Resource: "pods"}

// staticPods are the pods of the node's manifest sources, kept in the agent as the kubelet's pod
// config keeps them: the API only shows them, as mirror pods. Until a source has reported, its
// pods are those its mirror pods in the API show, so that a restarted agent whose manifest URL
// does not answer keeps running what it ran.
type staticPods struct {
	a  *Agent
	mu sync.Mutex
	// bySource holds each source's pods by UID; reported marks the sources that have reported
	// in this process.
	bySource map[string]map[types.UID]*corev1.Pod
	reported map[string]bool
	// logged holds the last error logged per manifest or pod, so that each is logged once.
	logged map[string]string
}

// staticRef names a static pod whose worker should look at it again.
type staticRef struct {
	UID             types.UID
	Namespace, Name string
}

func newStaticPods(a *Agent) *staticPods {
	return &staticPods{a: a, bySource: map[string]map[types.UID]*corev1.Pod{}, reported: map[string]bool{}, logged: map[string]string{}}
}

// adoptMirrors takes the static pods that mirrors show, for the sources that have not reported.
// A mirror's static pod is rebuilt from it: the UID is the one the source gives that name, and
// the spec the mirror's.
func (s *staticPods) adoptMirrors(mirrors []*corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range mirrors {
		src := m.Annotations[keys.ConfigSourceAnnotation]
		manifestName, ok := strings.CutSuffix(m.Name, "-"+s.a.cfg.NodeName)
		if s.reported[src] || !ok || (src != source.SourceFile && src != source.SourceHTTP) {
			continue
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, Labels: maps.Clone(m.Labels),
				Annotations: maps.Clone(m.Annotations),
				UID:         source.StaticPodUID(src, s.a.cfg.NodeName, m.Namespace, manifestName)},
			Spec: *m.Spec.DeepCopy(),
		}
		delete(p.Annotations, keys.MirrorAnnotation)
		p.Annotations[keys.ConfigHashAnnotation] = m.Annotations[keys.MirrorAnnotation]
		if s.bySource[src] == nil {
			s.bySource[src] = map[types.UID]*corev1.Pod{}
		}
		s.bySource[src][p.UID] = p
	}
}

// apply takes a source's update and returns the static pods that came, changed or went.
func (s *staticPods) apply(u source.Update) []staticRef {
	for origin, err := range u.Errs {
		s.logOnce(origin, err.Error(), "manifest not (fully) used", "source", u.Source, "manifest", origin, "err", err)
	}
	if u.Source == source.SourceHTTP && len(u.Errs) > 0 && len(u.Pods) == 0 {
		// The URL could not be read: what it gave before (or its mirrors show) stays until
		// it answers.
		return nil
	}
	next := map[types.UID]*corev1.Pod{}
	for _, p := range u.Pods {
		p = p.DeepCopy()
		if err := registry.AdmitPod(p); err != nil {
			s.logOnce(string(p.UID), err.Error(), "static pod is invalid", "pod", p.Namespace+"/"+p.Name, "err", err)
			continue
		}
		s.logOnce(string(p.UID), "", "")
		next[p.UID] = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.bySource[u.Source]
	var changed []staticRef
	for uid, p := range next {
		if old, ok := prev[uid]; !ok || old.Annotations[keys.ConfigHashAnnotation] != p.Annotations[keys.ConfigHashAnnotation] {
			slog.Info("static pod added or changed", "pod", p.Namespace+"/"+p.Name, "source", u.Source)
			changed = append(changed, staticRef{p.UID, p.Namespace, p.Name})
		}
	}
	for uid, p := range prev {
		if _, ok := next[uid]; !ok {
			slog.Info("static pod removed from its source", "pod", p.Namespace+"/"+p.Name, "source", u.Source)
			s.markRemoved(uid)
			changed = append(changed, staticRef{p.UID, p.Namespace, p.Name})
		}
	}
	s.bySource[u.Source] = next
	s.reported[u.Source] = true
	return changed
}

// removedDir holds a file per static pod removed from its source whose removal from the node
// has not finished: the pod's UID stays the same if its manifest comes back, and it must then
// start anew (a new sandbox, restart count 0), as the kubelet lets a static pod start again only
// once the old one has terminated, also after the agent was killed in the middle.
func (s *staticPods) removedDir() string { return filepath.Join(s.a.cfg.RootDir, "static-removed") }

func (s *staticPods) markRemoved(uid types.UID) {
	if err := os.MkdirAll(s.removedDir(), 0o755); err == nil {
		err = os.WriteFile(filepath.Join(s.removedDir(), string(uid)), nil, 0o644)
		if err == nil {
			return
		}
	}
	slog.Warn("record static pod removal", "uid", uid)
}

// removing reports whether the static pod uid is still being removed.
func (s *staticPods) removing(uid types.UID) bool {
	_, err := os.Stat(filepath.Join(s.removedDir(), string(uid)))
	return err == nil
}

// removed records that everything of the static pod uid is gone.
func (s *staticPods) removed(uid types.UID) {
	if err := os.Remove(filepath.Join(s.removedDir(), string(uid))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("record static pod removed", "uid", uid, "err", err)
	}
}

// get is a copy of the static pod with uid, nil if there is none.
func (s *staticPods) get(uid types.UID) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pods := range s.bySource {
		if p, ok := pods[uid]; ok {
			return p.DeepCopy()
		}
	}
	return nil
}

// byName is the static pod namespace/name, nil if there is none.
func (s *staticPods) byName(namespace, name string) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pods := range s.bySource {
		for _, p := range pods {
			if p.Namespace == namespace && p.Name == name {
				return p.DeepCopy()
			}
		}
	}
	return nil
}

// all is every static pod (read-only).
func (s *staticPods) all() []*corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*corev1.Pod
	for _, pods := range s.bySource {
		for _, p := range pods {
			out = append(out, p)
		}
	}
	return out
}

// mirrorOf is the API's mirror of static pod p when it is current (shows p's content and is not
// being deleted), nil if there is none such.
func (a *Agent) mirrorOf(p *corev1.Pod) *corev1.Pod {
	m := a.pods.get(p.Namespace, p.Name)
	if m == nil || !isMirror(m) || m.DeletionTimestamp != nil || m.Annotations[keys.MirrorAnnotation] != p.Annotations[keys.ConfigHashAnnotation] {
		return nil
	}
	return m
}

// syncMirror makes the API show static pod p, as the kubelet's mirror client does: a mirror that
// shows another content of p, or is being deleted, is deleted (its deletion wakes the worker,
// which then creates the new one); a missing one is created. A pod of that name that is not a
// mirror is left alone, and p runs without a mirror.
func (a *Agent) syncMirror(ctx context.Context, p *corev1.Pod) error {
	m := a.pods.get(p.Namespace, p.Name)
	switch {
	case m == nil:
		mirror := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, Annotations: maps.Clone(p.Annotations),
				// The embedded API keeps the static pod's UID; a kube-apiserver gives its own.
				UID: p.UID,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.cfg.NodeName, UID: a.nodeUID,
					Controller: ptr.To(true)}}},
			Spec: p.Spec,
		}
		mirror.Annotations[keys.MirrorAnnotation] = p.Annotations[keys.ConfigHashAnnotation]
		_, err := a.client.CoreV1().Pods(p.Namespace).Create(ctx, mirror, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create mirror pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		return nil
	case !isMirror(m):
		a.static.logOnce(string(p.UID)+"/mirror", "taken", "static pod has no mirror: a pod of its name, not from its manifest, exists",
			"pod", p.Namespace+"/"+p.Name)
		return nil
	case m.DeletionTimestamp != nil || m.Annotations[keys.MirrorAnnotation] != p.Annotations[keys.ConfigHashAnnotation]:
		return a.deleteMirror(ctx, m)
	}
	return nil
}

// deleteMirror deletes mirror pod m at once.
func (a *Agent) deleteMirror(ctx context.Context, m *corev1.Pod) error {
	err := a.client.CoreV1().Pods(m.Namespace).Delete(ctx, m.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: ptr.To(m.UID)}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete mirror pod %s/%s: %w", m.Namespace, m.Name, err)
	}
	return nil
}

// removeOrphanMirrors deletes the mirror pods of this node whose static pod is gone, once the
// sources that could define them have reported.
func (a *Agent) removeOrphanMirrors(ctx context.Context) {
	for _, m := range a.pods.mirrors() {
		if a.static.byName(m.Namespace, m.Name) != nil || !a.static.hasReported(m.Annotations[keys.ConfigSourceAnnotation]) {
			continue
		}
		// Its worker, if any, still stops what runs of it; the mirror is only a reflection.
		if err := a.deleteMirror(ctx, m); err != nil && ctx.Err() == nil {
			slog.Error("remove mirror pod", "pod", m.Namespace+"/"+m.Name, "err", err)
		}
	}
}

// hasReported reports whether the source has reported in this process; a source the agent is
// not configured with never will, and has nothing.
func (s *staticPods) hasReported(src string) bool {
	if (src == source.SourceFile && s.a.cfg.ManifestDir == "") || (src == source.SourceHTTP && s.a.cfg.ManifestURL == "") {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reported[src]
}

// logOnce logs msg with args as an error when what key stands for is now state, and not again
// while it stays so; an empty state forgets key, and logs nothing.
func (s *staticPods) logOnce(key, state, msg string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == "" {
		delete(s.logged, key)
		return
	}
	if s.logged[key] != state {
		slog.Error(msg, args...)
		s.logged[key] = state
	}
}
