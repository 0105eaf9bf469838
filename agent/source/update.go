// Package source produces the static pods of a node from its manifest sources, as the kubelet's
// config sources do: a directory of manifest files (WatchDir) and a manifest URL (PollURL). Each
// source sends the complete current set of its pods whenever that set changes; a manifest that
// cannot be read or decoded keeps the pods it last defined, so that a typo or an unreachable
// server never stops running pods.
package source

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/podagent/podagent/internal/keys"
)

// Source kinds: the kubelet's values of the kubernetes.io/config.source annotation.
const (
	SourceFile = "file"
	SourceHTTP = "http"
)

// Update is the complete current set of static pods of one source.
type Update struct {
	Source string           // "file" or "http"
	Pods   []*corev1.Pod    // sorted by namespace/name
	Errs   map[string]error // per file path (or the URL): why its content was not (fully) used
}

// part is what one manifest (a file, or the URL) contributes to an Update: the pods it defines
// (its last good ones if its current content is broken) and why its content was not used.
type part struct {
	origin string
	pods   []*corev1.Pod
	err    error
}

// buildUpdate merges the parts of one source, given in order of precedence (sorted file path,
// pods in document order). When two pods share a namespace/name, the first is kept and the
// other reported under its own part's origin: the kubelet does the same, and keeping the first
// means an added file never displaces a pod that already runs from an earlier one. The pods are
// deep copies, so that receivers may change them without touching the source's state.
func buildUpdate(kind string, parts []part) Update {
	u := Update{Source: kind, Errs: map[string]error{}}
	firstSeen := map[string]string{} // namespace/name -> origin
	for _, p := range parts {
		errs := []error{p.err}
		for _, pod := range p.pods {
			key := pod.Namespace + "/" + pod.Name
			if first, ok := firstSeen[key]; ok {
				errs = append(errs, fmt.Errorf("pod %s in %s: already defined in %s, ignored", key, p.origin, first))
				continue
			}
			firstSeen[key] = p.origin
			u.Pods = append(u.Pods, pod.DeepCopy())
		}
		if err := errors.Join(errs...); err != nil {
			u.Errs[p.origin] = err
		}
	}
	sort.Slice(u.Pods, func(i, j int) bool {
		a, b := u.Pods[i], u.Pods[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return u
}

// sameAs tells whether u and o hold the same pods and errors. Pods are compared by what
// determines them, name, UID and content hash, which a manifest fixes; errors by their message.
func (u Update) sameAs(o Update) bool {
	return u.fingerprint() == o.fingerprint()
}

// fingerprint is a text that two Updates share if and only if they are the same.
func (u Update) fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "source %s\n", u.Source)
	for _, p := range u.Pods {
		fmt.Fprintf(&b, "pod %s/%s %s %s\n", p.Namespace, p.Name, p.UID, p.Annotations[keys.ConfigHashAnnotation])
	}
	origins := make([]string, 0, len(u.Errs))
	for o := range u.Errs {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	for _, o := range origins {
		fmt.Fprintf(&b, "err %q %q\n", o, u.Errs[o].Error())
	}
	return b.String()
}

// sender sends Updates to out, skipping one that would repeat the last one sent.
type sender struct {
	out chan<- Update
	// last is the fingerprint of the last Update sent, not the Update itself: the receiver owns
	// what it received and may change it.
	last string
	sent bool
}

// send sends u unless it is the same as the last Update sent; the first one always goes out. It
// gives up when ctx ends, so that a receiver that stopped reading never blocks a source's
// shutdown, and then returns ctx's error.
func (s *sender) send(ctx context.Context, u Update) error {
	fp := u.fingerprint()
	if s.sent && fp == s.last {
		return nil
	}
	select {
	case s.out <- u:
		s.last, s.sent = fp, true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
